"""Bringing one file's bytes to disk: resumable (a partial `<file>.downloadInProgress`, the name llama.cpp
gives it, is continued with a Range request), verified (size, and the sha256 or git blob id the hub gives)
before it takes its final name, atomic (a partial file never has the final name), and one transfer per
file at a time however many threads or processes want it (an flock on a lock file)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import pathlib
import time

import httpx

from llamaserve.hub.names import HubError
from llamaserve.hub.progress import Progress

log = logging.getLogger("llamaserve.hub")

PARTIAL_SUFFIX = ".downloadInProgress"
_ATTEMPTS = 3  # a dropped connection is resumed this many times in all
_RETRY_DELAY_S = 1.0
_CHUNK = 1 << 20


@contextlib.contextmanager
def file_lock(path: pathlib.Path):
    """Exclusive while held, across threads (each opens its own descriptor) and processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class _Digest:
    """The hash the hub names a file by: sha256 of the bytes for LFS files, the git blob id otherwise."""

    def __init__(self, lfs: bool, size: int):
        if lfs:
            self.h = hashlib.sha256()
        else:
            self.h = hashlib.sha1()  # noqa: S324 - git's object id, not a security measure
            self.h.update(f"blob {max(size, 0)}\0".encode())

    def update(self, data: bytes) -> None:
        self.h.update(data)

    def hexdigest(self) -> str:
        return self.h.hexdigest()


def _hash_existing(path: pathlib.Path, digest: _Digest) -> None:
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)


def fetch(http: httpx.Client, url: str, dest: pathlib.Path, *, size: int, oid: str = "", lfs: bool = False,
          lock: pathlib.Path | None = None, progress: Progress | None = None, name: str = "") -> None:
    """Download `url` to `dest` unless it is there. `size` (-1: unknown) and `oid` (the expected hash; ""
    for none) are checked before the file takes its name. Raises HubError."""
    lock = lock or dest.with_name(dest.name + ".lock")
    with file_lock(lock):
        if dest.exists():
            return  # another thread or process finished it while this one waited
        partial = dest.with_name(dest.name + PARTIAL_SUFFIX)
        name = name or dest.name
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                _pull(http, url, partial, size, progress, name)
                break
            except _Dropped as exc:
                if attempt == _ATTEMPTS:
                    raise HubError(f"downloading {name} failed after {_ATTEMPTS} attempts: {exc}") from None
                log.warning("downloading %s: %s; resuming in %.0f s", name, exc, _RETRY_DELAY_S * attempt)
                time.sleep(_RETRY_DELAY_S * attempt)
        got = partial.stat().st_size
        if size >= 0 and got != size:
            partial.unlink(missing_ok=True)
            raise HubError(f"downloading {name}: got {got} bytes, the hub says {size}; the partial file is removed")
        if oid:
            digest = _Digest(lfs, got)
            _hash_existing(partial, digest)
            if digest.hexdigest() != oid.lower():
                partial.unlink(missing_ok=True)
                kind = "sha256" if lfs else "git blob id"
                raise HubError(f"downloading {name}: the file is corrupt ({kind} {digest.hexdigest()}, expected "
                               f"{oid.lower()}); it is removed, run again to download it anew")
        os.replace(partial, dest)


class _Dropped(Exception):
    """The transfer stopped part way; what arrived is kept for the next attempt."""


def _pull(http: httpx.Client, url: str, partial: pathlib.Path, size: int, progress: Progress | None, name: str) -> None:
    partial.parent.mkdir(parents=True, exist_ok=True)
    have = partial.stat().st_size if partial.exists() else 0
    if size >= 0 and have > size:
        partial.unlink()  # longer than the file can be: not a prefix of it
        have = 0
    if size >= 0 and have == size:
        return  # complete already; verified by the caller
    headers = {"Range": f"bytes={have}-"} if have else {}
    shown = None
    try:
        with http.stream("GET", url, headers=headers) as r:
            if r.status_code == 416 and have:  # the range is past the end: start again
                partial.unlink()
                raise _Dropped("the server refused to resume; starting again")
            if r.status_code in (401, 403):
                raise HubError(f"downloading {name}: the hub refused access (HTTP {r.status_code}); a gated or "
                               "private repository needs --hf-token or HF_TOKEN")
            if r.status_code not in (200, 206):
                raise HubError(f"downloading {name}: HTTP {r.status_code} from {url}")
            mode = "ab"
            if have and r.status_code == 200:  # the server ignored the Range: take the whole file
                have, mode = 0, "wb"
            total = size if size >= 0 else have + int(r.headers.get("content-length", -1) or -1)
            shown = progress.file(name, url, total, have) if progress is not None else None
            with open(partial, mode) as f:
                for chunk in r.iter_bytes():  # as it arrives: a cut keeps every byte received
                    f.write(chunk)
                    have += len(chunk)
                    if shown is not None:
                        shown.update(have)
                f.flush()
                os.fsync(f.fileno())
    except httpx.HTTPError as exc:
        if shown is not None:
            shown.finish(False)
        raise _Dropped(str(exc) or type(exc).__name__) from None
    if shown is not None:
        shown.finish(True)
    if size >= 0 and have < size:
        raise _Dropped(f"the connection closed at {have} of {size} bytes")
