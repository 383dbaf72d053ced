"""Models from Hugging Face through the command line, against a hub on loopback (tests/fake_hub.py, pointed
to by MODEL_ENDPOINT): `-hf` downloads into the llama.cpp cache with /health 503 and progress meanwhile,
serves the model under its repository name, starts again from the cache with --offline, loads split models;
bad repositories end start-up with one line; -cl lists the cache; a router lists cache models and
downloads one named by its repository id (POST /models/load, POST /models), and DELETE /models removes it."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import httpx
import openai
import pytest

from tests.conftest import MODEL, SHARED_MODELS, poll_until, serve, shared_model
from tests.fake_hub import TOKEN, FakeHub
from tests.helpers import CHILD

REPO = "test-org/SmolLM2-135M-Instruct-GGUF"
SPLIT = "test-org/SmolLM2-split-GGUF"
VISION = "test-org/SmolLM2-vision-GGUF"  # the model with a projector beside it


@pytest.fixture(scope="module")
def hub(derived_models):
    h = FakeHub()
    h.add_repo(REPO, {"README.md": b"# SmolLM2\n", "SmolLM2-135M-Instruct.Q4_1.gguf": pathlib.Path(MODEL)})
    shards = sorted((derived_models / "split").glob("*.gguf"))
    h.add_repo(SPLIT, {f"Q4_1/{p.name}": p for p in shards})
    h.add_repo("test-org/Gated-GGUF", {"g-Q4_1.gguf": b"GGUF"}, gated=True)
    if SHARED_MODELS is not None:
        h.add_repo(VISION, {"SmolLM2-135M-Instruct.Q4_1.gguf": pathlib.Path(MODEL),
                            "mmproj-SmolLM2-F32.gguf": SHARED_MODELS / "synthetic-mmproj-smollm2.f32.gguf"})
    yield h
    h.close()


def hub_env(hub, cache) -> dict[str, str]:
    return {"MODEL_ENDPOINT": hub.url, "LLAMA_CACHE": str(cache), "HF_TOKEN": ""}


def run_cli(hub, cache, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llamaserve", "--port", "0", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **hub_env(hub, cache)})


def test_hf_downloads_serves_and_starts_again_offline(request, hub, tmp_path):
    cache = tmp_path / "cache"
    hub.faults.rate = 40 << 20  # a transfer of a few seconds: long enough to see the server say so
    try:
        srv = serve(request, tmp_path, "-hf", f"{REPO}:q4_1", "-c", "1024", "-np", "1", wait=False,
                    env=hub_env(hub, cache))
        seen: list[dict] = []

        def loading_with_progress() -> bool:
            try:
                r = httpx.get(srv.url + "/health", timeout=2)
            except httpx.HTTPError:
                return False
            if r.status_code == 503 and r.json()["error"].get("download"):
                seen.append(r.json()["error"])
            return bool(seen) or r.status_code == 200

        poll_until(loading_with_progress, "a 503 with download figures while the model arrives", 120)
    finally:
        hub.faults.rate = 0
    assert seen, "the model was served before any download figure was seen"
    err = seen[0]
    assert err["code"] == 503 and err["message"] == "Loading model"
    (figures,) = err["download"].values()
    assert 0 <= figures["done"] <= figures["total"] == os.path.getsize(MODEL)
    poll_until(lambda: httpx.get(srv.url + "/health", timeout=5).status_code == 200, "the model serves")

    client = openai.OpenAI(base_url=srv.url + "/v1", api_key="none")
    assert [m.id for m in client.models.list().data] == [f"{REPO}:q4_1"]  # named as llama-server names it
    out = client.completions.create(model=f"{REPO}:q4_1", prompt="The capital of France is", max_tokens=4, temperature=0)
    assert out.choices[0].text
    model_path = httpx.get(srv.url + "/props").json()["model_path"]
    assert model_path.startswith(str(cache / "models--test-org--SmolLM2-135M-Instruct-GGUF" / "snapshots"))
    assert "downloading SmolLM2-135M-Instruct.Q4_1.gguf" in srv.log()
    srv.stop()

    hub.requests.clear()
    again = serve(request, tmp_path, "-hf", f"{REPO}:Q4_1", "--offline", "-c", "1024", "-np", "1", env=hub_env(hub, cache))
    assert httpx.get(again.url + "/props").json()["model_path"] == model_path
    assert hub.requests == []  # --offline: never a network call


def test_a_split_model_is_fetched_whole_and_loads_from_its_first_shard(request, hub, tmp_path):
    srv = serve(request, tmp_path, "-hf", f"{SPLIT}:Q4_1", "-c", "512", "-np", "1", env=hub_env(hub, tmp_path / "cache"))
    assert httpx.get(srv.url + "/props").json()["model_path"].endswith("Q4_1/SmolLM2-135M-Instruct.Q4_1-00001-of-00003.gguf")
    r = httpx.post(srv.url + "/completion", json={"prompt": "Hello", "n_predict": 2}, timeout=60)
    assert r.status_code == 200


@pytest.mark.parametrize("args, line", [
    (("-hf", "test-org/Nothing-GGUF"), "test-org/Nothing-GGUF: no such repository"),
    (("-hf", f"{REPO}:Q5_K_M"), "no GGUF file for quantization Q5_K_M in the repository (quantizations there: Q4_1)"),
    (("-hf", "test-org/Gated-GGUF"), "test-org/Gated-GGUF needs a token: it is gated or private"),
    (("-hf", REPO, "--offline"), f"--offline: {REPO} is not in the cache"),
    (("-hf", "not-a-repo"), "expected <user>/<model>[:quant]"),
])
def test_a_model_that_cannot_be_had_ends_start_up_with_one_line(hub, tmp_path, args, line):
    done = run_cli(hub, tmp_path / "empty-cache", *args)
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert line in out and "Traceback" not in out
    assert sum(line in text for text in out.splitlines()) == 1


def test_a_gated_repository_with_the_token(request, hub, tmp_path):
    # the gated repository's file is no model: getting past the hub to the load is what is checked
    done = run_cli(hub, tmp_path / "cache", "-hf", "test-org/Gated-GGUF", "--hf-token", TOKEN)
    assert done.returncode != 0 and "needs a token" not in done.stderr + done.stdout
    assert (tmp_path / "cache" / "models--test-org--Gated-GGUF" / "snapshots").is_dir()


def test_cache_list_names_the_cached_models(request, hub, tmp_path):
    cache = tmp_path / "cache"
    serve(request, tmp_path, "-hf", f"{REPO}:Q4_1", "-c", "512", "-np", "1", env=hub_env(hub, cache)).stop()
    done = run_cli(hub, cache, "-cl")
    assert done.returncode == 0
    assert done.stdout.splitlines() == ["number of models in cache: 1", f"   1. {REPO}:Q4_1"]


def test_the_router_downloads_a_model_named_by_its_repository(request, hub, tmp_path):
    cache = tmp_path / "cache"
    router = serve(request, tmp_path, *CHILD, router=True, env=hub_env(hub, cache))
    c = router.client()

    def listing() -> dict[str, dict]:
        return {m["id"]: m for m in c.get("/models").json()["data"]}

    assert f"{SPLIT}:Q4_1" not in listing()
    hub.faults.rate = 40 << 20
    try:
        r = c.post("/models/load", json={"model": f"{SPLIT}:Q4_1"})
        assert r.status_code == 200, r.text
        poll_until(lambda: listing()[f"{SPLIT}:Q4_1"]["status"].get("progress"), "download progress in /models", 60)
        assert listing()[f"{SPLIT}:Q4_1"]["status"]["value"] == "downloading"
    finally:
        hub.faults.rate = 0
    poll_until(lambda: listing()[f"{SPLIT}:Q4_1"]["status"]["value"] in ("loaded", "failed"), "the model loads")
    entry = listing()[f"{SPLIT}:Q4_1"]
    assert entry["status"]["value"] == "loaded", entry
    assert entry["path"].endswith("-00001-of-00003.gguf")
    out = c.post("/v1/chat/completions", json={"model": f"{SPLIT}:Q4_1", "max_tokens": 2,
                                                "messages": [{"role": "user", "content": "Hi"}]})
    assert out.status_code == 200, out.text

    # POST /models: download only; the model is then listed, unloaded
    assert c.post("/models", json={"model": f"{REPO}:Q4_1"}).json() == {"success": True}
    poll_until(lambda: listing()[f"{REPO}:Q4_1"]["status"]["value"] == "unloaded", "the download ends")
    assert listing()[f"{REPO}:Q4_1"]["path"].startswith(str(cache))
    assert c.post("/models", json={"model": f"{REPO}:Q4_1"}).status_code == 400  # already there

    # DELETE /models: the files leave the cache, the model the listing
    assert c.delete("/models", params={"model": f"{REPO}:Q4_1"}).json() == {"success": True}
    assert f"{REPO}:Q4_1" not in listing()
    assert not list((cache / "models--test-org--SmolLM2-135M-Instruct-GGUF" / "snapshots").rglob("*.gguf"))
    assert c.delete("/models", params={"model": f"{SPLIT}:Q4_1"}).status_code == 400  # loaded: unload first

    r = c.post("/models/load", json={"model": "test-org/Nothing-GGUF"})
    assert r.status_code == 200  # as llama-server: answered at once, the listing tells how it went
    poll_until(lambda: listing()["test-org/Nothing-GGUF"]["status"]["value"] == "failed", "the failure is listed")
    assert "no such repository" in listing()["test-org/Nothing-GGUF"]["status"]["reason"]


def test_a_router_preset_names_its_model_by_hf_repo_and_reloads(request, hub, tmp_path):
    preset = tmp_path / "models.ini"
    preset.write_text(f"[smol]\nhf-repo = {REPO}:Q4_1\n\n[gone]\nhf-repo = {SPLIT}:Q4_1\n")
    router = serve(request, tmp_path, *CHILD, "--models-preset", str(preset), router=True,
                   env=hub_env(hub, tmp_path / "cache"))
    c = router.client()
    assert {"smol", "gone"} <= {m["id"] for m in c.get("/models").json()["data"]}
    out = c.post("/v1/chat/completions", json={"model": "smol", "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]})
    assert out.status_code == 200, out.text  # downloaded on its first load
    (smol,) = [m for m in c.get("/models").json()["data"] if m["id"] == "smol"]
    assert "--hf-repo" not in smol["status"]["args"] and smol["path"].startswith(str(tmp_path / "cache"))

    preset.write_text(f"[smol]\nhf-repo = {REPO}:Q4_1\ndedup-cache-models = 1\nc = 256\n\n[new]\nhf-repo = {REPO}:Q4_1\n")
    ids = {m["id"] for m in c.get("/models", params={"reload": "1"}).json()["data"]}
    assert {"smol", "new"} <= ids and "gone" not in ids
    assert f"{REPO}:Q4_1" not in ids  # the cache entry the dedup preset serves is listed once, as "smol"
    status = {m["id"]: m["status"]["value"] for m in c.get("/models").json()["data"]}
    assert status["smol"] == "unloaded"  # its settings changed: unloaded, so that the next load takes them
    r = c.post("/tokenize", json={"model": f"{REPO}:Q4_1", "content": "hello"})
    assert r.status_code == 200  # hidden from the listing, still served


def test_the_draft_model_comes_from_hugging_face_with_hfd(request, hub, tmp_path):
    cache = tmp_path / "cache"
    srv = serve(request, tmp_path, "-m", MODEL, "-hfd", f"{REPO}:Q4_1", "-c", "1024", "-np", "1", env=hub_env(hub, cache))
    props = httpx.get(srv.url + "/props").json()
    assert props["default_generation_settings"]["params"]["speculative.types"] == "draft-simple"  # -hfd alone turns it on
    assert f"draft model file: {cache}" in srv.log()
    r = httpx.post(srv.url + "/completion", json={"prompt": "1, 2, 3, 4, 5,", "n_predict": 16, "temperature": 0}, timeout=60)
    assert r.status_code == 200 and r.json()["timings"]["draft_n"] > 0


def test_the_projector_comes_with_the_model_unless_no_mmproj(request, hub, tmp_path):
    shared_model("synthetic-mmproj-smollm2.f32.gguf")
    from tests.media_files import data_uri

    cache = tmp_path / "cache"
    srv = serve(request, tmp_path, "-hf", VISION, "-c", "1024", "-np", "1", env=hub_env(hub, cache))
    props = httpx.get(srv.url + "/props").json()
    assert props["modalities"]["vision"] is True and "snapshots" in props["media"]["path"]
    r = httpx.post(srv.url + "/v1/chat/completions", timeout=60, json={"max_tokens": 1, "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_uri(1)}}]}]})
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] > 16
    srv.stop()
    srv = serve(request, tmp_path, "-hf", VISION, "--no-mmproj", "--offline", "-c", "1024", "-np", "1", env=hub_env(hub, cache))
    assert httpx.get(srv.url + "/props").json()["modalities"]["vision"] is False
