"""The Hugging Face hub cache on disk, laid out as llama.cpp (and huggingface_hub) lay it out, so that a
model one of them downloaded is found by the others:

    <cache>/models--<user>--<repo>/refs/<branch>          the commit a branch points at
    <cache>/models--<user>--<repo>/blobs/<oid>            the file's bytes, named by its sha256 (LFS) or git oid
    <cache>/models--<user>--<repo>/snapshots/<commit>/<path>   a relative symlink to the blob

The router names its models `<user>/<repo>:<QUANT>` from it. Nothing here reaches the network."""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

from llamaserve.hub.names import SIDECARS, split_info, valid_repo_id

_COMMIT = re.compile(r"^[0-9a-fA-F]{40}$")


@dataclass(frozen=True)
class CachedModel:
    name: str  # "<user>/<repo>:<QUANT>"
    path: str  # the model file, or the first of its shards
    mmproj: str = ""  # a projector of the same repository


def cache_dir(environ: Mapping[str, str]) -> str:
    """The cache directory llama.cpp uses: LLAMA_CACHE, HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub,
    XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub; absolute, since children run elsewhere."""
    for var, sub in (("LLAMA_CACHE", ""), ("HF_HUB_CACHE", ""), ("HUGGINGFACE_HUB_CACHE", ""), ("HF_HOME", "hub"),
                     ("XDG_CACHE_HOME", "huggingface/hub")):
        base = environ.get(var, "")
        if base:
            return os.path.abspath(os.path.join(base, sub) if sub else base)
    return os.path.join(os.path.expanduser("~"), ".cache", "huggingface", "hub")


def url_cache_dir(environ: Mapping[str, str]) -> str:
    """Where llama.cpp keeps files downloaded by URL (-mu): LLAMA_CACHE, else XDG_CACHE_HOME/llama.cpp,
    else ~/.cache/llama.cpp."""
    if environ.get("LLAMA_CACHE"):
        return os.path.abspath(environ["LLAMA_CACHE"])
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.abspath(os.path.join(base, "llama.cpp"))


def repo_dir(cache: str, repo: str) -> pathlib.Path:
    return pathlib.Path(cache) / ("models--" + repo.replace("/", "--"))


def blob_path(cache: str, repo: str, oid: str) -> pathlib.Path:
    return repo_dir(cache, repo) / "blobs" / oid


def snapshot_path(cache: str, repo: str, commit: str, relpath: str) -> pathlib.Path:
    return repo_dir(cache, repo) / "snapshots" / commit / relpath


def lock_path(cache: str, repo: str, oid: str) -> pathlib.Path:
    # where huggingface_hub keeps its per-file locks, so that its downloads and ours take turns too
    return pathlib.Path(cache) / ".locks" / repo_dir(cache, repo).name / f"{oid}.lock"


def write_atomic(path: pathlib.Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_ref(cache: str, repo: str, branch: str, commit: str) -> None:
    write_atomic(repo_dir(cache, repo) / "refs" / branch, commit)


def link_snapshot(blob: pathlib.Path, final: pathlib.Path) -> None:
    """Make the snapshot entry `final` name `blob` (a relative symlink, as the hub cache has it; where links
    cannot be made, the blob moves there)."""
    if final.exists():
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        final.symlink_to(os.path.relpath(blob, final.parent))
    except FileExistsError:
        pass  # another process linked it first
    except OSError:
        os.replace(blob, final)


def _main_commit(repo: pathlib.Path) -> str:
    """The commit refs/main names, else the first other ref's; "" if none is valid."""
    refs = repo / "refs"
    if not refs.is_dir():
        return ""
    commits = {}
    for ref in sorted(refs.iterdir()):
        if ref.is_file():
            lines = ref.read_text(errors="replace").splitlines()
            if lines and _COMMIT.match(lines[0]):
                commits[ref.name] = lines[0]
    return commits.get("main") or next(iter(commits.values()), "")


def cached_files(cache: str, repo: str) -> dict[str, str]:
    """The files of a repository's cached snapshot: its path in the repository -> the local file."""
    directory = repo_dir(cache, repo)
    try:
        commit = _main_commit(directory)
        snapshot = directory / "snapshots" / commit
        if not commit or not snapshot.is_dir():
            return {}
        return {p.relative_to(snapshot).as_posix(): str(p)
                for p in sorted(snapshot.rglob("*")) if p.is_file()}  # is_file: a link to a blob that is there
    except OSError:
        return {}


def scan_cache(directory: str) -> list[CachedModel]:
    """The cache's models, by name; an absent or unreadable cache has none."""
    root = pathlib.Path(directory)
    if not directory or not root.is_dir():
        return []
    found: dict[str, CachedModel] = {}
    for entry in sorted(root.iterdir()):
        if not entry.name.startswith("models--") or not entry.is_dir():
            continue
        repo = entry.name[len("models--"):].replace("--", "/")
        if not valid_repo_id(repo):
            continue
        files = cached_files(directory, repo)
        mmproj = next((local for rel, local in files.items() if rel.endswith(".gguf") and "mmproj" in rel.lower()), "")
        for rel, local in files.items():
            info = split_info(rel)
            if info is None or info.index != 1 or not info.tag or any(mark in rel.lower() for mark in SIDECARS):
                continue
            name = f"{repo}:{info.tag}"
            if name not in found:
                found[name] = CachedModel(name, local, mmproj)
    return list(found.values())


def remove_model(cache: str, repo: str, tag: str) -> bool:
    """Delete a cached model: with a tag, the snapshot entries of that quantization (and the blobs no other
    entry links to), without one the whole repository. True if anything was removed."""
    directory = repo_dir(cache, repo)
    if not tag:
        if not directory.is_dir():
            return False
        shutil.rmtree(directory)
        return True
    files = cached_files(cache, repo)
    doomed = [pathlib.Path(local) for rel, local in files.items() if (info := split_info(rel)) and info.tag == tag.upper()]
    blobs = {p.resolve() for p in doomed if p.is_symlink()}
    for p in doomed:
        p.unlink(missing_ok=True)
    kept = {pathlib.Path(local).resolve() for local in cached_files(cache, repo).values()}
    for blob in blobs - kept:
        blob.unlink(missing_ok=True)
    return bool(doomed)
