"""The models a router serves: the bundled SmolLM2, the Hugging Face cache's models, each GGUF of --models-dir,
each --models-preset section."""

from __future__ import annotations

import pathlib
import re
from dataclasses import dataclass, field

from llamaserve.cli.flags import BY_NAME
from llamaserve.config import (
    BUNDLED_MODEL_FILE,
    Config,
    ModelPreset,
    bundled_model_path,
)
from llamaserve.hub.cache import scan_cache
from llamaserve.hub.fetch import Source, from_cache
from llamaserve.hub.names import HubError

DEFAULT_STOP_TIMEOUT = 10.0  # seconds an unloading child gets to exit before it is killed, as llama-server

_FIRST_SHARD = re.compile(r"-00001-of-\d{5}\.gguf$")
_OTHER_SHARD = re.compile(r"-\d{5}-of-\d{5}\.gguf$")


class CatalogError(ValueError):
    """The catalog cannot be built (bad directory, preset without a model, name clash, unknown default)."""


@dataclass
class CatalogEntry:
    name: str
    path: str
    source: str  # "bundled" | "cache" | "models_dir" | "preset"
    hf_repo: str = ""  # a Hugging Face model not in the cache yet (POST /models, a repo id, a preset's hf-repo): fetched first
    hf_file: str = ""  # with hf_repo: that file rather than the quantization's
    hidden: bool = False  # not listed (a preset with dedup-cache-models serves the same file), still routed to
    aliases: tuple[str, ...] = ()
    mmproj: str = ""  # multimodal projector found next to the model (listed; this server has no --mmproj yet)
    flags: dict[str, list[str]] = field(default_factory=dict)  # per-model flags from the preset, by Config field
    load_on_startup: bool = False
    stop_timeout: float = DEFAULT_STOP_TIMEOUT


def _is_companion(name: str) -> bool:
    # a multimodal projector cannot be served on its own; it belongs to the model beside it
    return "mmproj" in name.lower()


def scan_models_dir(directory: str) -> list[CatalogEntry]:
    """One entry per model file, named by file stem; a sub-directory is one model (named by the directory)
    holding the model, or the first of its split shards, and optionally an mmproj companion."""
    root = pathlib.Path(directory)
    if not root.is_dir():
        raise CatalogError(f"--models-dir {directory}: not a directory")
    entries = []
    for item in sorted(root.iterdir(), key=lambda p: p.name):
        if item.name.startswith("."):
            continue
        if item.is_dir():
            model, first_shard, mmproj = None, None, ""
            for f in sorted(item.iterdir(), key=lambda p: p.name):
                if not f.name.endswith(".gguf") or not f.is_file():
                    continue
                if _is_companion(f.name):
                    mmproj = str(f)
                elif _FIRST_SHARD.search(f.name):
                    first_shard = f
                elif not _OTHER_SHARD.search(f.name) and model is None:
                    model = f
            chosen = first_shard or model
            if chosen is not None:
                entries.append(CatalogEntry(item.name, str(chosen), "models_dir", mmproj=mmproj))
        elif item.name.endswith(".gguf") and item.is_file():
            if _is_companion(item.name) or (_OTHER_SHARD.search(item.name) and not _FIRST_SHARD.search(item.name)):
                continue
            name = _FIRST_SHARD.sub("", item.name) if _FIRST_SHARD.search(item.name) else item.name[: -len(".gguf")]
            entries.append(CatalogEntry(name, str(item), "models_dir"))
    return entries


def bundled_entry() -> CatalogEntry | None:
    path = bundled_model_path()
    if path is None or not path.is_file():
        return None
    # The file name is the id a single-model server reports for it, so it routes here too.
    return CatalogEntry(BUNDLED_MODEL_FILE[: -len(".gguf")], str(path), "bundled", aliases=(BUNDLED_MODEL_FILE,))


class Catalog:
    """Model entries by name, plus the aliases that resolve to them."""

    def __init__(self, entries: list[CatalogEntry], default: str = ""):
        self.entries: dict[str, CatalogEntry] = {}
        self._names: dict[str, str] = {}
        for entry in entries:
            self.entries[entry.name] = entry
        for entry in self.entries.values():
            self._names[entry.name] = entry.name
        for entry in self.entries.values():
            for alias in entry.aliases:
                owner = self._names.setdefault(alias, entry.name)
                if owner != entry.name:
                    raise CatalogError(f"alias '{alias}' of model '{entry.name}' is already the name of model '{owner}'")
        if default and default not in self._names:
            raise CatalogError(f"--models-default {default}: no such model (known: {', '.join(self.entries) or 'none'})")
        self.default = self._names[default] if default else ""

    def add(self, entry: CatalogEntry) -> None:
        """A model named after the catalog was built (a repository id to download)."""
        self.entries[entry.name] = entry
        self._names.setdefault(entry.name, entry.name)

    def remove(self, name: str) -> None:
        self.entries.pop(name, None)
        for alias in [a for a, owner in self._names.items() if owner == name]:
            del self._names[alias]

    def resolve(self, name: str) -> CatalogEntry | None:
        key = self._names.get(name)
        return self.entries[key] if key is not None else None

    def __iter__(self):
        return iter(self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)

    @classmethod
    def build(cls, config: Config) -> Catalog:
        """Bundled model, the cache's, then --models-dir (same name: the directory wins, as in llama-server),
        then the presets on top."""
        entries: dict[str, CatalogEntry] = {}
        bundled = bundled_entry()
        if bundled is not None:
            entries[bundled.name] = bundled
        for cached in scan_cache(config.model_cache_dir):
            entries[cached.name] = CatalogEntry(cached.name, cached.path, "cache", mmproj=cached.mmproj)
        if config.models_dir:
            for entry in scan_models_dir(config.models_dir):
                entries[entry.name] = entry
        presets = dict(config.model_presets)
        common = presets.pop("*", ModelPreset(name="*"))
        for name, preset in presets.items():
            entry = entries.get(name)
            hf_repo, hf_file = _flag_value(preset, "hf_repo"), _flag_value(preset, "hf_file")
            if entry is None:
                if not preset.model and not hf_repo:
                    raise CatalogError(f"models preset [{name}] names no model: add 'model = /path/to/file.gguf' "
                                       "or 'hf-repo = <user>/<model>[:quant]'")
                entry = entries[name] = CatalogEntry(name, preset.model, "preset")
            elif preset.model or hf_repo:
                entry.path = preset.model
                entry.source = "preset"
            if hf_repo and not preset.model:
                # as llama-server: the cached file when the cache has it, else downloaded on the first load
                entry.path = _cached_path(config, hf_repo, hf_file)
                entry.hf_repo, entry.hf_file = ("", "") if entry.path else (hf_repo, hf_file)
            entry.aliases = tuple(dict.fromkeys(entry.aliases + preset.aliases))
        for entry in entries.values():
            preset = presets.get(entry.name, ModelPreset(name=entry.name))
            entry.flags = {k: t for k, t in {**common.flags, **preset.flags}.items() if k not in _FETCHED}
            entry.load_on_startup = _first(preset.load_on_startup, common.load_on_startup, False)
            entry.stop_timeout = _first(preset.stop_timeout, common.stop_timeout, DEFAULT_STOP_TIMEOUT)
        _hide_deduplicated(config, presets, common.dedup_cache_models, entries)
        default = config.models_default or (bundled.name if bundled is not None else "")
        return cls(list(entries.values()), default)


# where a preset's model comes from: the router resolves these itself and starts the child with -m
_FETCHED = {"hf_repo", "hf_file", "model_url"}
_DRAFT_HF_KEY = BY_NAME["--spec-draft-hf"][0].key


def _flag_value(preset: ModelPreset, key: str) -> str:
    tokens = preset.flags.get(key) or []
    return tokens[-1] if len(tokens) > 1 else ""


def _cached_path(config: Config, spec: str, hf_file: str = "") -> str:
    try:
        found = from_cache(Source(config.model_cache_dir, config.hub_endpoint), spec, hf_file)
    except HubError:
        return ""  # the cache has the repository but not that file: it is downloaded when loaded
    return found.model if found else ""


def _hide_deduplicated(config: Config, presets: dict[str, ModelPreset], everywhere: bool,
                       entries: dict[str, CatalogEntry]) -> None:
    """dedup-cache-models (in a preset's section, or in [*] for all): the cache models whose file a preset's
    -hf (or draft -hf) resolves to leave the listing, so the model shows once, under the preset's name."""
    paths = set()
    for preset in presets.values():
        if preset.dedup_cache_models or everywhere:
            for repo_key, file_key in (("hf_repo", "hf_file"), (_DRAFT_HF_KEY, "")):
                spec = _flag_value(preset, repo_key)
                if spec:
                    paths.add(_cached_path(config, spec, _flag_value(preset, file_key) if file_key else ""))
    for entry in entries.values():
        if entry.source == "cache" and entry.path in paths:
            entry.hidden = True


def _first(*values):
    return next(v for v in values if v is not None)
