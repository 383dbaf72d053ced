"""The Hugging Face cache on disk: llama-server's "<user>/<repo>:<QUANT>" names for the router, which snapshot
counts, which files are models, where the cache is, and snapshot links to blobs."""

import pytest

from llamaserve.config import Config
from llamaserve.router.catalog import Catalog
from llamaserve.hub.cache import cache_dir, cached_files, link_snapshot, scan_cache, url_cache_dir
from llamaserve.hub.names import split_info

MAIN, OLD = "1" * 40, "2" * 40


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GGUF")


def repo(root, name: str, refs: dict[str, str]):
    d = root / ("models--" + name.replace("/", "--"))
    for ref, commit in refs.items():
        touch(d / "refs" / ref)
        (d / "refs" / ref).write_text(commit + "\n")
    return d


@pytest.mark.parametrize("relpath, expected", [
    ("tinygemma3-Q8_0.gguf", ("Q8_0", 1)),
    ("SmolLM2-135M-Instruct.Q4_1.gguf", ("Q4_1", 1)),
    ("stories260K-infill-F32.gguf", ("F32", 1)),
    ("Q4_K_M/model-q4_k_m-00002-of-00003.gguf", ("Q4_K_M", 2)),
    ("model.gguf", ("", 1)),  # no quantization in the name: not listed
])
def test_quantization_closes_the_file_name(relpath, expected):
    info = split_info(relpath)
    assert (info.tag, info.index) == expected


def test_a_file_that_is_not_a_gguf_has_no_quantization():
    assert split_info("README.md") is None


def test_scan_names_each_repo_and_quantization_once(tmp_path):
    snap = repo(tmp_path, "org/Model-GGUF", {"main": MAIN, "dev": OLD}) / "snapshots"
    touch(snap / MAIN / "model-Q4_K_M.gguf")
    touch(snap / MAIN / "Q8_0" / "model-Q8_0-00001-of-00002.gguf")  # a split model: its first shard
    touch(snap / MAIN / "Q8_0" / "model-Q8_0-00002-of-00002.gguf")
    touch(snap / MAIN / "other-model.Q4_K_M.gguf")  # same quantization again: the first by name counts
    touch(snap / MAIN / "mmproj-model-F16.gguf")  # a projector, listed beside the models
    touch(snap / MAIN / "mtp-model-F16.gguf")  # a draft head: no model of its own
    touch(snap / OLD / "model-F16.gguf")  # another ref's snapshot: main wins
    other = repo(tmp_path, "org/only-dev", {"dev": OLD})  # without main, another ref serves
    touch(other / "snapshots" / OLD / "x-IQ2_M.gguf")
    touch(repo(tmp_path, "org/bad-ref", {"main": "not-a-commit"}) / "snapshots" / "not-a-commit" / "y-Q4_0.gguf")
    touch(repo(tmp_path, "no-slash", {"main": MAIN}) / "snapshots" / MAIN / "z-Q4_0.gguf")
    touch(tmp_path / "datasets--org--data" / "snapshots" / MAIN / "d-Q4_0.gguf")
    found = {m.name: m for m in scan_cache(str(tmp_path))}
    assert sorted(found) == ["org/Model-GGUF:Q4_K_M", "org/Model-GGUF:Q8_0", "org/only-dev:IQ2_M"]
    assert found["org/Model-GGUF:Q4_K_M"].path == str(snap / MAIN / "model-Q4_K_M.gguf")
    assert found["org/Model-GGUF:Q8_0"].path.endswith("model-Q8_0-00001-of-00002.gguf")
    assert found["org/Model-GGUF:Q8_0"].mmproj.endswith("mmproj-model-F16.gguf")
    assert found["org/only-dev:IQ2_M"].mmproj == ""


def test_no_cache_no_models(tmp_path):
    assert scan_cache("") == [] and scan_cache(str(tmp_path / "absent")) == []


@pytest.mark.parametrize("environ, expected", [
    ({"LLAMA_CACHE": "/c", "HF_HUB_CACHE": "/h"}, "/c"),
    ({"HF_HUB_CACHE": "/h", "HF_HOME": "/home"}, "/h"),
    ({"HUGGINGFACE_HUB_CACHE": "/hh"}, "/hh"),
    ({"HF_HOME": "/home", "XDG_CACHE_HOME": "/x"}, "/home/hub"),
    ({"XDG_CACHE_HOME": "/x"}, "/x/huggingface/hub"),
])
def test_cache_dir_follows_llama_cpp(environ, expected):
    assert cache_dir(environ) == expected


def test_relative_cache_dir_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cache_dir({"LLAMA_CACHE": "tmp"}) == str(tmp_path / "tmp")


def test_catalog_serves_cache_models_under_models_dir_and_presets(tmp_path):
    touch(repo(tmp_path / "hub", "org/m", {"main": MAIN}) / "snapshots" / MAIN / "m-Q4_0.gguf")
    catalog = Catalog.build(Config(model_cache_dir=str(tmp_path / "hub")))
    entry = catalog.resolve("org/m:Q4_0")
    assert entry is not None and entry.source == "cache" and entry.path.endswith("m-Q4_0.gguf")


@pytest.mark.parametrize("environ, expected", [
    ({"LLAMA_CACHE": "/c", "XDG_CACHE_HOME": "/x"}, "/c"),
    ({"XDG_CACHE_HOME": "/x", "HF_HOME": "/h"}, "/x/llama.cpp"),
])
def test_url_downloads_go_to_llama_cpps_own_cache_directory(environ, expected):
    assert url_cache_dir(environ) == expected


def test_a_snapshot_entry_is_a_relative_link_to_its_blob(tmp_path):
    d = repo(tmp_path, "org/m", {"main": MAIN})
    blob = d / "blobs" / ("a" * 64)
    touch(blob)
    final = d / "snapshots" / MAIN / "sub" / "m-Q4_0.gguf"
    link_snapshot(blob, final)
    assert final.is_symlink() and not final.readlink().is_absolute() and final.resolve() == blob.resolve()
    link_snapshot(blob, final)  # again: nothing changes
    assert cached_files(str(tmp_path), "org/m") == {"sub/m-Q4_0.gguf": str(final)}


def test_a_snapshot_link_whose_blob_is_gone_is_not_a_cached_file(tmp_path):
    d = repo(tmp_path, "org/m", {"main": MAIN})
    final = d / "snapshots" / MAIN / "m-Q4_0.gguf"
    final.parent.mkdir(parents=True)
    final.symlink_to("../../blobs/missing")
    assert cached_files(str(tmp_path), "org/m") == {}


def test_a_preset_names_its_model_by_hf_repo_from_the_cache_or_to_download(tmp_path):
    from llamaserve.config import ModelPreset

    touch(repo(tmp_path / "hub", "org/m", {"main": MAIN}) / "snapshots" / MAIN / "m-Q4_0.gguf")
    presets = {
        "cached": ModelPreset("cached", flags={"hf_repo": ["--hf-repo", "org/m:Q4_0"], "n_ctx": ["--ctx-size", "512"]},
                              dedup_cache_models=True),
        "remote": ModelPreset("remote", flags={"hf_repo": ["--hf-repo", "org/other"], "hf_file": ["--hf-file", "o.gguf"]}),
    }
    catalog = Catalog.build(Config(model_cache_dir=str(tmp_path / "hub"), model_presets=presets))
    cached, remote = catalog.resolve("cached"), catalog.resolve("remote")
    assert cached.path.endswith("m-Q4_0.gguf") and not cached.hf_repo
    assert cached.flags == {"n_ctx": ["--ctx-size", "512"]}  # the router starts the child with -m
    assert (remote.path, remote.hf_repo, remote.hf_file) == ("", "org/other", "o.gguf")
    assert catalog.resolve("org/m:Q4_0").hidden  # dedup-cache-models: listed once, under the preset's name
