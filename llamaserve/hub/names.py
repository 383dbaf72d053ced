"""Which files of a Hugging Face repository `-hf <user>/<repo>[:quant]` means, by their paths alone: the
model (or the first of its shards) for a quantization, its other shards, a projector beside it. The
choices follow the llama-server we build against, so the same command line picks the same file."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from llamaserve.errors import ServerError

_SHARD = re.compile(r"^(.+)-(\d{5})-of-(\d{5})$", re.IGNORECASE)
_QUANT = re.compile(r"[-.]([A-Z0-9_]+)$", re.IGNORECASE)  # the quantization closes the file's stem
# a repository id: word characters, each '/', '.', '-' between two of them, exactly one '/'
_REPO_ID = re.compile(r"^\w+(?:[./-]\w+)*$", re.ASCII)
# files that serve beside a model, never as one (projectors, importance matrices, draft heads)
SIDECARS = ("mmproj", "imatrix", "mtp-", "eagle3-", "dflash-", "dspark-")
DEFAULT_QUANTS = ("Q4_K_M", "Q8_0")  # tried in this order when -hf names no quantization


class HubError(ServerError):
    """A model that cannot be had from the hub or the cache; the message is the one line a user sees."""


def split_repo_tag(text: str) -> tuple[str, str]:
    """("user/repo", "Q4_K_M") for "user/repo:Q4_K_M"; the tag is "" when none is given."""
    repo, _, tag = text.partition(":")
    if ":" in tag:  # as llama-server: the last part is the tag
        tag = tag.rsplit(":", 1)[1]
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise HubError(f"invalid Hugging Face repository '{text}': expected <user>/<model>[:quant]")
    return repo, tag


def valid_repo_id(repo: str) -> bool:
    return 0 < len(repo) <= 256 and repo.count("/") == 1 and bool(_REPO_ID.match(repo))


@dataclass(frozen=True)
class SplitInfo:
    prefix: str  # the path without ".gguf" and without the shard suffix (the tag included)
    tag: str  # the quantization, upper case; "" if the name has none
    index: int  # 1-based shard number (1 for a whole file)
    count: int  # shards in all (1 for a whole file)


def split_info(path: str) -> SplitInfo | None:
    """The shard and quantization a GGUF's path names; None for a file that is not a GGUF."""
    if not path.endswith(".gguf"):
        return None
    prefix, index, count = path[: -len(".gguf")], 1, 1
    shard = _SHARD.match(prefix)
    if shard:
        prefix, index, count = shard.group(1), int(shard.group(2)), int(shard.group(3))
    quant = _QUANT.search(prefix)
    return SplitInfo(prefix, quant.group(1).upper() if quant else "", index, count)


def is_model_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.endswith(".gguf") and not any(mark in name for mark in SIDECARS)


def _first_shard(path: str) -> bool:
    info = split_info(path)
    return info is not None and (info.count <= 1 or info.index == 1)


def pick_model(paths: Sequence[str], tag: str) -> str:
    """The model file for a quantization tag (case-insensitive; "" tries Q4_K_M, Q8_0, then the first
    model file there is); "" when there is none."""
    for want in ([tag] if tag else DEFAULT_QUANTS):
        pattern = re.compile(re.escape(want) + r"[.-]", re.IGNORECASE)
        for path in paths:
            if is_model_file(path) and pattern.search(path) and _first_shard(path):
                return path
    if not tag:
        return next((p for p in paths if is_model_file(p) and _first_shard(p)), "")
    return ""


def shards(paths: Sequence[str], primary: str) -> list[str]:
    """Every shard of the model `primary` starts (just [primary] for a whole file), in shard order."""
    info = split_info(primary)
    if info is None or info.count <= 1:
        return [primary]
    same = [(split_info(p), p) for p in paths]
    return [p for s, p in sorted((s.index, p) for s, p in same if s and s.count == info.count and s.prefix == info.prefix)]


def _bits(tag: str) -> int:
    digits = re.search(r"\d+", tag)
    return int(digits.group()) if digits else 0


def pick_sibling(paths: Sequence[str], model: str, keyword: str, tag: str = "") -> str:
    """The file with `keyword` in its path ("mmproj", ...) that belongs with `model`: the one in the deepest
    directory the two share, then the one naming the tag, then the closest number of bits."""
    tag = tag.upper()
    info = split_info(model)
    want_bits = _bits(tag) if tag else _bits(info.tag if info else "")
    model_dirs = model.split("/")[:-1]
    best, best_key = "", None
    for path in paths:
        if not path.endswith(".gguf") or keyword not in path:
            continue
        dirs = path.split("/")[:-1]
        if dirs != model_dirs[: len(dirs)]:
            continue  # not in a directory on the model's own path
        sib = split_info(path)
        exact = bool(tag) and f"-{tag}." in path.upper()
        key = (len(dirs), exact, -abs(_bits(sib.tag if sib else "") - want_bits))
        if best_key is None or key > best_key:
            best, best_key = path, key
    return best


def quants(paths: Sequence[str]) -> list[str]:
    """The quantizations a repository offers (for the "no file for this quantization" error)."""
    tags = {s.tag for p in paths if is_model_file(p) and (s := split_info(p)) and s.tag and s.index == 1}
    return sorted(tags)
