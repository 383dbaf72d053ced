"""The models a router serves: the bundled SmolLM2, the Hugging Face cache's models, each GGUF of --models-dir,
each --models-preset section."""

from __future__ import annotations

import pathlib
import re
from dataclasses import dataclass, field

from llamaserve.config import (
    BUNDLED_MODEL_FILE,
    Config,
    ModelPreset,
    bundled_model_path,
)
from llamaserve.router.hf_cache import scan_cache

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
            if entry is None:
                if not preset.model:
                    raise CatalogError(f"models preset [{name}] names no model: add 'model = /path/to/file.gguf'")
                entry = entries[name] = CatalogEntry(name, preset.model, "preset")
            elif preset.model:
                entry.path = preset.model
                entry.source = "preset"
            entry.aliases = tuple(dict.fromkeys(entry.aliases + preset.aliases))
        for entry in entries.values():
            preset = presets.get(entry.name, ModelPreset(name=entry.name))
            entry.flags = {**common.flags, **preset.flags}
            entry.load_on_startup = _first(preset.load_on_startup, common.load_on_startup, False)
            entry.stop_timeout = _first(preset.stop_timeout, common.stop_timeout, DEFAULT_STOP_TIMEOUT)
        default = config.models_default or (bundled.name if bundled is not None else "")
        return cls(list(entries.values()), default)


def _first(*values):
    return next(v for v in values if v is not None)
