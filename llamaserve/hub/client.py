"""The Hugging Face hub's HTTP API, the two calls llama.cpp makes before it downloads: which commit a
repository's main branch is at (`api/models/<repo>/refs`), and the files of that commit with their sizes
and hashes (`api/models/<repo>/tree/<commit>?recursive=true`). MODEL_ENDPOINT (or HF_ENDPOINT) points it
at a mirror or a hub of one's own."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from llamaserve import __version__
from llamaserve.hub.names import HubError

DEFAULT_ENDPOINT = "https://huggingface.co/"
_HEX = re.compile(r"^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$")


class HubUnreachable(HubError):
    """No answer from the hub at all (no network, DNS, refused, timed out)."""


def endpoint(environ: Mapping[str, str]) -> str:
    base = environ.get("MODEL_ENDPOINT") or environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    return base if base.endswith("/") else base + "/"


@dataclass(frozen=True)
class RemoteFile:
    path: str  # in the repository
    size: int  # bytes; -1 when the hub does not say
    oid: str  # the blob's name in the cache: the LFS sha256, else the git blob id
    lfs: bool  # oid is the sha256 of the content (else a git blob sha1)
    url: str  # where its bytes are


class Hub:
    """A client of one hub endpoint, with the user's token (sent as a bearer token when given)."""

    def __init__(self, base: str, token: str = "", timeout: float = 30.0):
        self.base = base
        headers = {"User-Agent": f"llamaserve/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # redirects: resolve URLs send the bytes from a CDN; httpx drops the token on a move to another host
        self.http = httpx.Client(headers=headers, follow_redirects=True,
                                 timeout=httpx.Timeout(timeout, read=max(timeout, 60.0)))
        self.has_token = bool(token)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _get_json(self, path: str, repo: str):
        url = self.base + path
        try:
            r = self.http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise HubUnreachable(f"cannot reach {self.base} for {repo}: {exc or type(exc).__name__}"
                                 " (with --offline the model is taken from the cache)") from None
        # the hub says which failure it is in X-Error-Code (an unknown repository is a 401 to anonymous callers)
        code = r.headers.get("x-error-code", "")
        if code == "RepoNotFound" or r.status_code == 404:
            private = "" if self.has_token else " (a private one needs --hf-token or HF_TOKEN)"
            raise HubError(f"{repo}: no such repository on {self.base}{private}")
        if code == "GatedRepo" or r.status_code in (401, 403):
            if self.has_token:
                raise HubError(f"{repo}: the hub refused the token (HTTP {r.status_code}): it has no access to this "
                               "repository; for a gated one, accept its terms on the model page first")
            raise HubError(f"{repo} needs a token: it is gated or private (HTTP {r.status_code}); pass "
                           "--hf-token or set HF_TOKEN")
        if r.status_code != 200:
            raise HubError(f"{repo}: the hub answered HTTP {r.status_code} for {url}: {_error_text(r)}")
        try:
            return r.json()
        except ValueError:
            raise HubError(f"{repo}: the hub sent something that is not JSON for {url}") from None

    def main_commit(self, repo: str) -> tuple[str, str]:
        """(branch, commit) of the repository's main branch, else of its first branch."""
        data = self._get_json(f"api/models/{repo}/refs", repo)
        branches = [b for b in (data.get("branches") if isinstance(data, dict) else None) or []
                    if isinstance(b, dict) and isinstance(b.get("name"), str)
                    and re.fullmatch(r"[0-9a-fA-F]{40}", str(b.get("targetCommit", "")))
                    and "/" not in b["name"] and b["name"] not in ("", ".", "..")]
        if not branches:
            raise HubError(f"{repo}: the hub lists no branch to download from")
        chosen = next((b for b in branches if b["name"] == "main"), branches[0])
        return chosen["name"], chosen["targetCommit"]

    def files(self, repo: str, commit: str) -> list[RemoteFile]:
        """The files of a commit, in the hub's order; entries with unsafe paths or odd hashes are left out."""
        data = self._get_json(f"api/models/{repo}/tree/{commit}?recursive=true", repo)
        if not isinstance(data, list):
            raise HubError(f"{repo}: the hub's file list is not a list")
        out = []
        for item in data:
            if not isinstance(item, dict) or item.get("type") != "file" or not isinstance(item.get("path"), str):
                continue
            path = item["path"]
            if path.startswith("/") or ".." in path.split("/") or "\\" in path:
                continue  # never outside the snapshot directory
            lfs = item.get("lfs") if isinstance(item.get("lfs"), dict) else None
            oid = str((lfs or item).get("oid", ""))
            if not _HEX.match(oid):
                continue
            size = (lfs or item).get("size", item.get("size", -1))
            out.append(RemoteFile(path, size if isinstance(size, int) else -1, oid.lower(), lfs is not None,
                                  f"{self.base}{repo}/resolve/{commit}/{quote(path)}"))
        return out


def _error_text(r: httpx.Response) -> str:
    try:
        body = r.json()
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return body["error"]
    except ValueError:
        pass
    return r.text[:200]
