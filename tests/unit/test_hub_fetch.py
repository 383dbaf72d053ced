"""The downloader against a hub on loopback (tests/fake_hub.py): first download, the cache layout llama.cpp
shares, resume, verification, --offline, gated and unknown repositories, split models, racing downloads."""

import os
import pathlib
import socket
import threading

import pytest

from llamaserve.hub import cache
from llamaserve.hub.client import HubUnreachable
from llamaserve.hub.fetch import Source, resolve, resolve_url
from llamaserve.hub.names import HubError
from llamaserve.hub.progress import Progress
from llamaserve.hub.transfer import PARTIAL_SUFFIX
from tests.fake_hub import TOKEN, FakeHub

MODEL = bytes(range(256)) * 4096  # 1 MiB stands in for a GGUF here: the bytes are what is checked
OTHER = b"GGUF" + os.urandom(300_000)


@pytest.fixture()
def hub():
    h = FakeHub()
    h.add_repo("org/M-GGUF", {"README.md": b"# M\n", "m-Q4_0.gguf": MODEL, "m-Q8_0.gguf": OTHER,
                              "mmproj-m-F16.gguf": b"GGUF-projector"})
    yield h
    h.close()


def source(tmp_path, hub, **kw) -> Source:
    return Source(str(tmp_path / "cache"), hub.url + "/", **kw)


def cdn_gets(hub) -> list[str]:
    return [p for p in hub.paths_requested("GET") if p.startswith("/cdn/")]


def test_first_download_lands_in_the_hub_cache_layout(tmp_path, hub):
    src = source(tmp_path, hub)
    files = resolve(src, "org/M-GGUF:Q4_0")
    commit = hub.repos["org/M-GGUF"].commit
    repo_dir = cache.repo_dir(src.cache_dir, "org/M-GGUF")
    assert files.model == str(repo_dir / "snapshots" / commit / "m-Q4_0.gguf")
    assert pathlib.Path(files.model).read_bytes() == MODEL
    link = pathlib.Path(files.model)
    assert link.is_symlink() and link.resolve() == (repo_dir / "blobs" / hub.repos["org/M-GGUF"].files["m-Q4_0.gguf"].sha256).resolve()
    assert (repo_dir / "refs" / "main").read_text() == commit
    assert not list(repo_dir.rglob("*" + PARTIAL_SUFFIX))
    assert cdn_gets(hub) == ["/cdn/org/M-GGUF/m-Q4_0.gguf"]  # the projector was not asked for


def test_a_cached_model_is_not_downloaded_again(tmp_path, hub):
    src = source(tmp_path, hub)
    first = resolve(src, "org/M-GGUF:q4_0")
    again = resolve(src, "org/M-GGUF:Q4_0")
    assert again == first and len(cdn_gets(hub)) == 1


def test_the_default_quantization_and_the_projector(tmp_path, hub):
    files = resolve(source(tmp_path, hub), "org/M-GGUF", mmproj=True)  # no Q4_K_M there: Q8_0 is next
    assert pathlib.Path(files.model).name == "m-Q8_0.gguf"
    assert pathlib.Path(files.mmproj).read_bytes() == b"GGUF-projector"


def test_a_progress_figure_per_file(tmp_path, hub):
    progress = Progress(terminal=False)
    resolve(source(tmp_path, hub), "org/M-GGUF:Q4_0", progress=progress)
    (figures,) = progress.snapshot().values()
    assert figures == {"done": len(MODEL), "total": len(MODEL)}


def test_a_cache_written_as_llama_server_writes_it_is_found_offline(tmp_path, hub):
    root = tmp_path / "cache"
    commit = "c" * 40
    repo_dir = root / "models--ggml-org--tiny-GGUF"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    blob = repo_dir / "blobs" / ("d" * 64)
    blob.parent.mkdir()
    blob.write_bytes(b"GGUF")
    snap = repo_dir / "snapshots" / commit / "tiny-Q8_0.gguf"
    snap.parent.mkdir(parents=True)
    snap.symlink_to(os.path.relpath(blob, snap.parent))
    files = resolve(Source(str(root), hub.url + "/", offline=True), "ggml-org/tiny-GGUF:Q8_0")
    assert files.model == str(snap)
    assert hub.requests == []  # --offline: not a single call


def test_offline_with_an_empty_cache_says_so(tmp_path, hub):
    with pytest.raises(HubError, match="--offline: org/M-GGUF is not in the cache"):
        resolve(source(tmp_path, hub, offline=True), "org/M-GGUF:Q4_0")
    assert hub.requests == []


def test_offline_from_the_cache(tmp_path, hub):
    online = resolve(source(tmp_path, hub), "org/M-GGUF:Q4_0")
    hub.requests.clear()
    assert resolve(source(tmp_path, hub, offline=True), "org/M-GGUF:Q4_0") == online
    assert hub.requests == []


def test_offline_without_the_quantization_lists_what_the_cache_has(tmp_path, hub):
    resolve(source(tmp_path, hub), "org/M-GGUF:Q4_0")
    with pytest.raises(HubError, match=r"no GGUF file for quantization Q5_K_M in the cache .*\(quantizations there: Q4_0\)"):
        resolve(source(tmp_path, hub, offline=True), "org/M-GGUF:Q5_K_M")


def test_an_interrupted_transfer_is_resumed(tmp_path, hub):
    hub.faults.cut_after["m-Q4_0.gguf"] = 300_000
    files = resolve(source(tmp_path, hub), "org/M-GGUF:Q4_0")
    assert pathlib.Path(files.model).read_bytes() == MODEL
    ranges = [h.get("Range") for m, p, h in hub.requests if m == "GET" and p.startswith("/cdn/")]
    assert ranges == [None, "bytes=300000-"]


def test_a_partial_file_of_an_earlier_run_is_continued(tmp_path, hub):
    src = source(tmp_path, hub)
    sha = hub.repos["org/M-GGUF"].files["m-Q4_0.gguf"].sha256
    partial = cache.blob_path(src.cache_dir, "org/M-GGUF", sha).with_name(sha + PARTIAL_SUFFIX)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(MODEL[:123_456])
    files = resolve(src, "org/M-GGUF:Q4_0")
    assert pathlib.Path(files.model).read_bytes() == MODEL and not partial.exists()
    (get,) = [h for m, p, h in hub.requests if m == "GET" and p.startswith("/cdn/")]
    assert get["Range"] == "bytes=123456-"


def test_a_corrupt_transfer_is_refused_and_leaves_nothing(tmp_path, hub):
    hub.faults.corrupt.add("m-Q4_0.gguf")
    src = source(tmp_path, hub)
    with pytest.raises(HubError, match="corrupt"):
        resolve(src, "org/M-GGUF:Q4_0")
    repo_dir = cache.repo_dir(src.cache_dir, "org/M-GGUF")
    assert not [p for p in (repo_dir / "blobs").iterdir() if not p.name.endswith(".lock")]
    assert not (repo_dir / "snapshots").exists()
    hub.faults.corrupt.clear()  # the next run downloads it anew
    assert pathlib.Path(resolve(src, "org/M-GGUF:Q4_0").model).read_bytes() == MODEL


def test_a_gated_repository_needs_the_token(tmp_path, hub):
    hub.add_repo("org/Gated", {"g-Q4_0.gguf": MODEL}, gated=True)
    with pytest.raises(HubError, match="org/Gated needs a token: it is gated or private"):
        resolve(source(tmp_path, hub), "org/Gated:Q4_0")
    with pytest.raises(HubError, match="refused the token"):
        resolve(source(tmp_path, hub, token="hf_wrong"), "org/Gated:Q4_0")
    files = resolve(source(tmp_path, hub, token=TOKEN), "org/Gated:Q4_0")
    assert pathlib.Path(files.model).read_bytes() == MODEL


def test_an_unknown_repository(tmp_path, hub):
    with pytest.raises(HubError, match="org/Nothing: no such repository"):
        resolve(source(tmp_path, hub), "org/Nothing")


def test_no_file_for_the_quantization_lists_the_quantizations(tmp_path, hub):
    with pytest.raises(HubError, match=r"no GGUF file for quantization IQ2_M in the repository \(quantizations there: Q4_0, Q8_0\)"):
        resolve(source(tmp_path, hub), "org/M-GGUF:IQ2_M")


def test_an_hf_file_that_is_not_there(tmp_path, hub):
    with pytest.raises(HubError, match="no file 'x.gguf'"):
        resolve(source(tmp_path, hub), "org/M-GGUF", hf_file="x.gguf")
    assert pathlib.Path(resolve(source(tmp_path, hub), "org/M-GGUF", hf_file="m-Q8_0.gguf").model).read_bytes() == OTHER


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_network(tmp_path):
    src = Source(str(tmp_path / "cache"), f"http://127.0.0.1:{_closed_port()}/")
    with pytest.raises(HubUnreachable, match="cannot reach"):
        resolve(src, "org/M-GGUF:Q4_0")


def test_no_network_with_the_model_cached_serves_the_cached_copy(tmp_path, hub):
    online = resolve(source(tmp_path, hub), "org/M-GGUF:Q4_0")
    src = Source(str(tmp_path / "cache"), f"http://127.0.0.1:{_closed_port()}/")
    assert resolve(src, "org/M-GGUF:Q4_0") == online


def test_a_split_model_downloads_every_shard(tmp_path, hub):
    shards = {f"Q4_0/s-Q4_0-{i:05d}-of-00003.gguf": bytes([i]) * 1000 for i in (1, 2, 3)}
    hub.add_repo("org/Split", {"README.md": b"x", **shards})
    files = resolve(source(tmp_path, hub), "org/Split:Q4_0")
    assert files.model.endswith("Q4_0/s-Q4_0-00001-of-00003.gguf")
    folder = pathlib.Path(files.model).parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(pathlib.Path(p).name for p in shards)


def test_racing_downloads_of_one_file_transfer_it_once(tmp_path, hub):
    hub.faults.rate = 4 << 20  # slow enough that the two overlap
    src, results, errors = source(tmp_path, hub), [], []

    def run():
        try:
            results.append(resolve(src, "org/M-GGUF:Q4_0"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 3 and len(set(results)) == 1
    assert cdn_gets(hub) == ["/cdn/org/M-GGUF/m-Q4_0.gguf"]


def test_a_url_download_is_kept_with_its_etag(tmp_path, hub):
    url = f"{hub.url}/cdn/org/M-GGUF/m-Q8_0.gguf"
    dest = tmp_path / "llama.cpp" / "m-Q8_0.gguf"
    assert resolve_url(url, dest) == str(dest) and dest.read_bytes() == OTHER
    assert (tmp_path / "llama.cpp" / "m-Q8_0.gguf.etag").read_text().strip('"') == hub.repos["org/M-GGUF"].files["m-Q8_0.gguf"].sha256
    resolve_url(url, dest)  # same ETag: a HEAD, no second transfer
    assert len(cdn_gets(hub)) == 1
    hub.requests.clear()
    assert resolve_url(url, dest, offline=True) == str(dest) and hub.requests == []


def test_mmproj_url_fetches_the_projector_beside_a_local_model(tmp_path, hub):
    from llamaserve.config import Config
    from llamaserve.hub.fetch import fetch_model

    config = Config(model=str(tmp_path / "local.gguf"), mmproj_url=f"{hub.url}/cdn/org/M-GGUF/mmproj-m-F16.gguf",
                    url_cache_dir=str(tmp_path / "urls"))
    assert config.remote_model  # the fetch runs before the model loads
    fetch_model(config)
    assert config.model == str(tmp_path / "local.gguf")  # -m stays as given
    assert pathlib.Path(config.mmproj_path).read_bytes() == b"GGUF-projector"
    assert config.mmproj_path.startswith(str(tmp_path / "urls"))
