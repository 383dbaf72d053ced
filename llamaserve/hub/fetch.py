"""From `-hf <user>/<repo>[:quant]` (or `-mu URL`) to local files: ask the hub which files the quantization
means, download what the cache lacks, link it into the snapshot. With --offline, or when the hub cannot
be asked, the cache alone answers."""

from __future__ import annotations

import logging
import os
import pathlib
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from llamaserve.config import Config
from llamaserve.hub import cache
from llamaserve.hub.client import Hub, HubUnreachable, RemoteFile
from llamaserve.hub.names import HubError, pick_model, pick_sibling, quants, shards, split_repo_tag
from llamaserve.hub.progress import Progress
from llamaserve.hub.transfer import fetch

log = logging.getLogger("llamaserve.hub")


@dataclass(frozen=True)
class Source:
    """Where a model comes from and how to reach it."""

    cache_dir: str
    endpoint: str
    token: str = ""
    offline: bool = False


@dataclass(frozen=True)
class ModelFiles:
    model: str  # the file to load: the model, or the first of its shards
    mmproj: str = ""  # the projector beside it, when one was asked for and the repository has one


def _choose(repo: str, tag: str, hf_file: str, paths: list[str], where: str) -> list[str]:
    """The repository paths the model is made of (its shards in order)."""
    if hf_file:
        if hf_file not in paths:
            ggufs = [p for p in paths if p.endswith(".gguf")]
            raise HubError(f"{repo}: no file '{hf_file}' {where} (GGUF files: {', '.join(ggufs) or 'none'})")
        return shards(paths, hf_file)
    primary = pick_model(paths, tag)
    if not primary:
        offered = quants(paths)
        what = f"no GGUF file for quantization {tag}" if tag else "no GGUF model file"
        raise HubError(f"{repo}: {what} {where} (quantizations there: {', '.join(offered) or 'none'})")
    return shards(paths, primary)


def from_cache(source: Source, spec: str, hf_file: str = "", mmproj: bool = False) -> ModelFiles | None:
    """The model's files in the cache, or None if the cache does not hold that repository at all.
    Raises HubError when it does but lacks the quantization (or a shard)."""
    repo, tag = split_repo_tag(spec)
    files = cache.cached_files(source.cache_dir, repo)
    if not files:
        return None
    paths = list(files)
    wanted = _choose(repo, tag, hf_file, paths, f"in the cache ({cache.repo_dir(source.cache_dir, repo)})")
    missing = [p for p in wanted if p not in files]
    if missing:
        raise HubError(f"{repo}: the cache lacks {', '.join(missing)}")
    projector = pick_sibling(paths, wanted[0], "mmproj") if mmproj else ""
    return ModelFiles(files[wanted[0]], files[projector] if projector else "")


def resolve(source: Source, spec: str, hf_file: str = "", mmproj: bool = False,
            progress: Progress | None = None) -> ModelFiles:
    """Local files for `spec` ("user/repo[:quant]"), downloading what is missing. Raises HubError."""
    repo, tag = split_repo_tag(spec)
    if source.offline:
        found = from_cache(source, spec, hf_file, mmproj)
        if found is None:
            raise HubError(f"--offline: {repo} is not in the cache ({source.cache_dir}); run once without "
                           "--offline to download it")
        return found
    with Hub(source.endpoint, source.token) as hub:
        try:
            branch, commit = hub.main_commit(repo)
            remote = hub.files(repo, commit)
        except HubError as exc:
            found = from_cache(source, spec, hf_file, mmproj)
            if found is None:
                raise
            log.warning("%s; using the cached copy", exc.message)
            return found
        cache.write_ref(source.cache_dir, repo, branch, commit)
        by_path = {f.path: f for f in remote}
        wanted = _choose(repo, tag, hf_file, list(by_path), "in the repository")
        projector = pick_sibling(list(by_path), wanted[0], "mmproj") if mmproj else ""
        local = {p: _download(hub, source, repo, commit, by_path[p], progress) for p in wanted + ([projector] if projector else [])}
    return ModelFiles(local[wanted[0]], local[projector] if projector else "")


def _download(hub: Hub, source: Source, repo: str, commit: str, f: RemoteFile, progress: Progress | None) -> str:
    final = cache.snapshot_path(source.cache_dir, repo, commit, f.path)
    if final.exists():
        return str(final)
    blob = cache.blob_path(source.cache_dir, repo, f.oid)
    fetch(hub.http, f.url, blob, size=f.size, oid=f.oid, lfs=f.lfs, lock=cache.lock_path(source.cache_dir, repo, f.oid),
          progress=progress, name=f.path.rsplit("/", 1)[-1])
    cache.link_snapshot(blob, final)
    return str(final)


def url_file(url: str, directory: str) -> pathlib.Path:
    """Where -mu keeps a download: the URL's last path part, in llama.cpp's cache directory."""
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    if not name:
        raise HubError(f"--model-url {url}: the URL names no file")
    return pathlib.Path(directory) / name


def resolve_url(url: str, dest: pathlib.Path, token: str = "", offline: bool = False,
                progress: Progress | None = None) -> str:
    """A file downloaded by URL: the copy at `dest` when it is there (and, online, when the server's ETag
    is the one saved with it), else a fresh download."""
    etag_file = dest.with_name(dest.name + ".etag")
    if offline:
        if not dest.exists():
            raise HubError(f"--offline: {dest} has not been downloaded yet; run once without --offline")
        return str(dest)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(headers=headers, follow_redirects=True, timeout=httpx.Timeout(30.0, read=60.0)) as http:
        try:
            head = http.head(url)
        except httpx.HTTPError as exc:
            if dest.exists():
                log.warning("cannot reach %s (%s); using the downloaded copy", url, exc)
                return str(dest)
            raise HubUnreachable(f"cannot reach {url}: {exc or type(exc).__name__}") from None
        if head.status_code >= 400:
            if dest.exists():
                return str(dest)
            raise HubError(f"--model-url {url}: HTTP {head.status_code}")
        etag = head.headers.get("etag", "")
        if dest.exists():
            saved = etag_file.read_text().strip() if etag_file.exists() else ""
            if not etag or saved == etag:
                return str(dest)
            os.unlink(dest)  # the server has another version
        size = int(head.headers.get("content-length", -1) or -1)
        fetch(http, url, dest, size=size, progress=progress)
    if etag:
        cache.write_atomic(etag_file, etag)
    return str(dest)


_URL_SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")


def url_parts(url: str) -> list[str]:
    """Every shard's URL when `url` names the first of a split GGUF, else [url]."""
    base, _, query = url.partition("?")
    shard = _URL_SHARD.search(base)
    if not shard or int(shard.group(2)) <= 1:
        return [url]
    stem, count = base[: shard.start()], int(shard.group(2))
    return [f"{stem}-{i:05d}-of-{count:05d}.gguf" + (f"?{query}" if query else "") for i in range(1, count + 1)]


def fetch_model(config: Config, progress: Progress | None = None) -> None:
    """Set config.model (and config.mmproj_path) to local files for -hf or -mu, and the draft model's for
    -hfd, downloading what is missing. Raises HubError with the one line to show."""
    source = Source(config.model_cache_dir, config.hub_endpoint, config.hf_token, config.offline)
    if config.hf_repo:
        files = resolve(source, config.hf_repo, config.hf_file, mmproj=config.mmproj_auto, progress=progress)
        config.model = files.model
        if files.mmproj and not config.mmproj_path:  # -mm names another projector
            config.mmproj_path = files.mmproj
    elif config.model_url:
        first = url_file(config.model_url, config.url_cache_dir)
        directory = pathlib.Path(config.model).parent if config.model else first.parent
        parts = url_parts(config.model_url)
        # a whole file goes to -m's path when one is given; shards keep their names, in -m's directory
        dests = [pathlib.Path(config.model)] if config.model and len(parts) == 1 else [directory / url_file(u, "").name for u in parts]
        local = [resolve_url(url, dest, config.hf_token, config.offline, progress) for url, dest in zip(parts, dests)]
        config.model = local[0]
    if config.mmproj_url:
        dest = pathlib.Path(config.mmproj_path) if config.mmproj_path else url_file(config.mmproj_url, config.url_cache_dir)
        config.mmproj_path = resolve_url(config.mmproj_url, dest, config.hf_token, config.offline, progress)
        log.info("projector file: %s", config.mmproj_path)
    if config.spec.draft_hf:
        config.spec.draft_model = resolve(source, config.spec.draft_hf, progress=progress).model
        log.info("draft model file: %s", config.spec.draft_model)
    log.info("model file: %s", config.model)
