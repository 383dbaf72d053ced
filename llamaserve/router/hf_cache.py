"""The models of a Hugging Face hub cache (where llama.cpp's -hf downloads go), named `<user>/<repo>:<QUANT>`
as llama-server's router names them: one per repository and quantization, read from the snapshot its
refs/main (or another ref) points at. Nothing here reaches the network."""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

_SHARD = re.compile(r"^(.+)-(\d{5})-of-(\d{5})$", re.IGNORECASE)
_QUANT = re.compile(r"[-.]([A-Z0-9_]+)$", re.IGNORECASE)  # the quantization closes the file's stem
_COMMIT = re.compile(r"^[0-9a-fA-F]{40}$")
# a repository id: word characters, each '/', '.', '-' between two of them, exactly one '/'
_REPO_ID = re.compile(r"^\w+(?:[./-]\w+)*$", re.ASCII)
# files that serve beside a model, never as one (projectors, draft heads)
_SIDECARS = ("mmproj", "mtp-", "eagle3-", "dflash-", "dspark-")


@dataclass(frozen=True)
class CachedModel:
    name: str  # "<user>/<repo>:<QUANT>"
    path: str  # the model file, or the first of its shards
    mmproj: str = ""  # a projector of the same repository (listed only)


def cache_dir(environ: Mapping[str, str]) -> str:
    """The cache directory llama.cpp uses: LLAMA_CACHE, HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub,
    XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub; absolute, since children run elsewhere."""
    for var, sub in (("LLAMA_CACHE", ""), ("HF_HUB_CACHE", ""), ("HUGGINGFACE_HUB_CACHE", ""), ("HF_HOME", "hub"),
                     ("XDG_CACHE_HOME", "huggingface/hub")):
        base = environ.get(var, "")
        if base:
            return os.path.abspath(os.path.join(base, sub) if sub else base)
    return os.path.join(os.path.expanduser("~"), ".cache", "huggingface", "hub")


def quantization(relpath: str) -> tuple[str, int]:
    """("Q8_0", 1) for "dir/model-Q8_0.gguf", the shard number for "m-Q4_K_M-00002-of-00003.gguf";
    ("", 0) for a file that is not a GGUF."""
    if not relpath.lower().endswith(".gguf"):
        return "", 0
    stem, shard = relpath[: -len(".gguf")], 1
    split = _SHARD.match(stem)
    if split:
        stem, shard = split.group(1), int(split.group(2))
    quant = _QUANT.search(stem)
    return (quant.group(1).upper() if quant else ""), shard


def _snapshot(repo_dir: pathlib.Path) -> pathlib.Path | None:
    """The snapshot a ref names: main's, else the first other ref's."""
    refs = repo_dir / "refs"
    if not refs.is_dir():
        return None
    commits = {}
    for ref in sorted(refs.iterdir()):
        if ref.is_file():
            lines = ref.read_text(errors="replace").splitlines()
            if lines and _COMMIT.match(lines[0]):
                commits[ref.name] = lines[0]
    commit = commits.get("main") or next(iter(commits.values()), None)
    snapshot = repo_dir / "snapshots" / commit if commit else None
    return snapshot if snapshot is not None and snapshot.is_dir() else None


def scan_cache(directory: str) -> list[CachedModel]:
    """The cache's models, by name; an absent or unreadable cache has none."""
    root = pathlib.Path(directory)
    if not directory or not root.is_dir():
        return []
    found: dict[str, CachedModel] = {}
    for repo_dir in sorted(root.iterdir()):
        if not repo_dir.name.startswith("models--") or not repo_dir.is_dir():
            continue
        repo = repo_dir.name[len("models--"):].replace("--", "/")
        if repo.count("/") != 1 or not _REPO_ID.match(repo):
            continue
        try:
            snapshot = _snapshot(repo_dir)
            files = sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()) if snapshot else []
        except OSError:
            continue
        mmproj = next((snapshot / f for f in files if f.endswith(".gguf") and "mmproj" in f.lower()), "")
        for rel in files:
            quant, shard = quantization(rel)
            if shard != 1 or not quant or any(mark in rel.lower() for mark in _SIDECARS):
                continue
            name = f"{repo}:{quant}"
            if name not in found:
                found[name] = CachedModel(name, str(snapshot / rel), str(mmproj))
    return list(found.values())
