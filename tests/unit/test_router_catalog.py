"""The router's model catalog: --models-dir layout rules, presets on top, aliases and the default model."""

import pytest

from llamaserve.config import BUNDLED_MODEL_FILE, Config, ModelPreset
from llamaserve.router.catalog import Catalog, CatalogError, scan_models_dir

SMOL = BUNDLED_MODEL_FILE[: -len(".gguf")]


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GGUF")


def test_models_dir_layout(tmp_path):
    touch(tmp_path / "llama-3.2-1b-Q4_K_M.gguf")
    touch(tmp_path / "mmproj-orphan.gguf")  # a projector alone is no model
    touch(tmp_path / "big-00001-of-00002.gguf")  # top-level split: the first shard, named without the suffix
    touch(tmp_path / "big-00002-of-00002.gguf")
    touch(tmp_path / "gemma-3-4b" / "gemma-3-4b-Q8_0.gguf")  # a sub-directory is one model
    touch(tmp_path / "gemma-3-4b" / "mmproj-F16.gguf")
    touch(tmp_path / "kimi" / "kimi-00002-of-00003.gguf")
    touch(tmp_path / "kimi" / "kimi-00001-of-00003.gguf")
    touch(tmp_path / "kimi" / "kimi-00003-of-00003.gguf")
    touch(tmp_path / "empty-dir" / "README.gguf.txt")
    (tmp_path / "notes.txt").write_text("x")
    entries = {e.name: e for e in scan_models_dir(str(tmp_path))}
    assert sorted(entries) == ["big", "gemma-3-4b", "kimi", "llama-3.2-1b-Q4_K_M"]
    assert entries["big"].path.endswith("big-00001-of-00002.gguf")
    assert entries["gemma-3-4b"].path.endswith("gemma-3-4b-Q8_0.gguf")
    assert entries["gemma-3-4b"].mmproj.endswith("mmproj-F16.gguf")
    assert entries["kimi"].path.endswith("kimi-00001-of-00003.gguf")
    assert {e.source for e in entries.values()} == {"models_dir"}


def test_bundled_model_is_always_there_and_the_default(tmp_path):
    catalog = Catalog.build(Config())
    assert list(catalog.entries) == [SMOL] and catalog.default == SMOL
    assert catalog.resolve(BUNDLED_MODEL_FILE).name == SMOL  # the id a single-model server reports
    assert catalog.resolve("nope") is None


def test_presets_configure_and_add_models(tmp_path):
    touch(tmp_path / "a.gguf")
    presets = {
        "*": ModelPreset("*", flags={"n_ctx": ["--ctx-size", "1024"]}, stop_timeout=2.0),
        "a": ModelPreset("a", aliases=("alpha",), flags={"n_ctx": ["--ctx-size", "2048"]}, load_on_startup=True),
        "extra": ModelPreset("extra", model="/elsewhere/x.gguf"),
    }
    catalog = Catalog.build(Config(models_dir=str(tmp_path), model_presets=presets, models_default="alpha"))
    assert list(catalog.entries) == [SMOL, "a", "extra"]
    a, extra, smol = catalog.entries["a"], catalog.entries["extra"], catalog.entries[SMOL]
    assert catalog.default == "a" and catalog.resolve("alpha") is a
    assert (a.flags, a.load_on_startup, a.stop_timeout) == ({"n_ctx": ["--ctx-size", "2048"]}, True, 2.0)
    assert (extra.path, extra.source, extra.flags) == ("/elsewhere/x.gguf", "preset", {"n_ctx": ["--ctx-size", "1024"]})
    assert (smol.load_on_startup, smol.stop_timeout) == (False, 2.0)


@pytest.mark.parametrize("presets, default, fragment", [
    ({"orphan": ModelPreset("orphan")}, "", "names no model"),
    ({"x": ModelPreset("x", model="/x.gguf", aliases=(SMOL,))}, "", "already the name"),
    ({}, "nope", "no such model"),
])
def test_catalog_errors(presets, default, fragment):
    with pytest.raises(CatalogError) as exc:
        Catalog.build(Config(model_presets=presets, models_default=default))
    assert fragment in str(exc.value)
