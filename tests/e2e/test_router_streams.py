"""Router mode: models found in a Hugging Face cache (LLAMA_CACHE), listed and served as "<user>/<repo>:<QUANT>",
and resumable streams (X-Conversation-Id) through the router, whose GET/DELETE /v1/stream go to the child that
holds the session, or answer for a request whose model is still waiting to load.

--models-max 1 makes a load wait deterministically: while the one loaded model is busy, nothing can be
unloaded to make room, so the cache model stays "loading" until the busy request ends."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json

import httpx
import pytest

from tests.conftest import MODEL, poll_until, send_and_leave, serve
from tests.helpers import CHILD, SMOL

REPO = "test-org/tiny-GGUF"
Q4, Q8 = f"{REPO}:Q4_1", f"{REPO}:Q8_0"
COMMIT = "ab" * 20


def fake_hf_cache(root) -> str:
    """A hub cache as -hf leaves it: refs/main names the snapshot, whose files link to the bundled model."""
    repo = root / ("models--" + REPO.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for name in ("tiny-Q4_1.gguf", "tiny-Q8_0.gguf", "mmproj-tiny-F16.gguf"):
        (snapshot / name).symlink_to(MODEL)
    (snapshot / "README.md").write_text("not a model")
    stale = root / "models--test-org--stale"  # its ref names no snapshot: nothing to serve
    (stale / "refs").mkdir(parents=True)
    (stale / "refs" / "main").write_text(COMMIT)
    (root / "not-a-repo").mkdir()
    return str(root)


@pytest.fixture(scope="module")
def router(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("router-streams")
    return serve(request, tmp, "--models-max", "1", *CHILD, router=True,
                 env={"LLAMA_CACHE": fake_hf_cache(tmp / "hf-cache")})


def listing(srv) -> dict[str, dict]:
    return {m["id"]: m for m in httpx.get(srv.url + "/models", timeout=30).json()["data"]}


def status(srv, name: str) -> str:
    return listing(srv)[name]["status"]["value"]


def conv(cid: str) -> dict[str, str]:
    return {"X-Conversation-Id": cid}


def chat(model: str, max_tokens: int = 8) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "hello"}], "stream": True,
            "max_tokens": max_tokens, "temperature": 0}


def replay(srv, cid: str) -> httpx.Response:
    return httpx.get(srv.url + "/v1/stream", params={"conv_id": cid, "from": 0}, timeout=120)


def stop(srv, cid: str) -> httpx.Response:
    return httpx.delete(srv.url + "/v1/stream", params={"conv_id": cid}, timeout=30)


@contextlib.contextmanager
def busy(srv, model: str):
    """`model` loaded (unloading the other) and generating until the block ends, so that with --models-max 1
    a load of the other model waits."""
    with httpx.Client(base_url=srv.url, timeout=180) as c:
        body = {"model": model, "prompt": "Tell a story", "n_predict": 400, "ignore_eos": True, "stream": True}
        with c.stream("POST", "/completion", json=body) as r:
            assert r.status_code == 200
            next(r.iter_raw())
            yield


def test_hf_cache_models_are_listed_by_repo_and_quant(router):
    models = listing(router)
    assert set(models) == {SMOL, Q4, Q8}
    for name in (Q4, Q8):
        m = models[name]
        assert m["source"] == "cache" and m["status"]["value"] == "unloaded"
        assert m["path"].endswith(f"/snapshots/{COMMIT}/tiny-{name.split(':')[1]}.gguf")
        assert m["mmproj"].endswith("mmproj-tiny-F16.gguf")  # beside the model, not a model itself
        args = m["status"]["args"]
        assert args[args.index("--alias") + 1] == name


def test_a_conversation_is_replayed_and_stopped_through_the_router(router):
    cid = f"chat-7::{Q4}"  # the model name's slash travels in the query string
    with httpx.Client(base_url=router.url, timeout=180) as c:
        with c.stream("POST", "/v1/chat/completions", json=chat(Q4), headers=conv(cid)) as r:
            assert r.status_code == 200
            received = r.read()
        assert b"data: [DONE]" in received and status(router, Q4) == "loaded"
        again = replay(router, cid)
        assert again.status_code == 200 and again.content == received
        [found] = c.post("/v1/streams/lookup", json={"conversation_ids": [cid, "unknown"]}).json()
        assert found["conversation_id"] == cid and found["is_done"] is True and found["total_bytes"] == len(received)
        assert stop(router, cid).status_code == 204
        gone = replay(router, cid)
        assert gone.status_code == 404 and gone.json()["error"]["message"] == "Stream not found or expired"
        assert c.post("/v1/streams/lookup", json={"conversation_ids": [cid]}).json() == []


def test_a_stop_cancels_a_request_waiting_for_its_model(router):
    cid = "stopped while loading"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        with busy(router, SMOL):
            waiting = pool.submit(httpx.post, router.url + "/v1/chat/completions", json=chat(Q4, 400),
                                  headers=conv(cid), timeout=300)
            poll_until(lambda: status(router, Q4) == "loading", "the cache model waits to load")
            early = replay(router, cid)
            assert early.status_code == 503 and early.json()["error"] == {
                "code": 503, "message": "Stream owner model is loading, retry later", "type": "unavailable_error"}
            assert stop(router, cid).status_code == 204
        # the busy model is idle now: the cache model loads, and the waiting request meets its stop
        answer = waiting.result(timeout=300)
    assert answer.status_code == 400 and "cancelled" in answer.json()["error"]["message"]
    assert replay(router, cid).status_code == 404


def test_a_conversation_resumes_after_its_client_left_during_the_load(router):
    cid = "reloaded page"
    with busy(router, SMOL):
        sock = send_and_leave(router.url, "/v1/chat/completions", json.dumps(chat(Q4, 12)).encode(), conv(cid))
        poll_until(lambda: status(router, Q4) == "loading", "the cache model waits to load")
        sock.close()
        assert replay(router, cid).status_code == 503
    # once loaded, the request reaches the child with no client left, and the session takes the generation
    poll_until(lambda: replay(router, cid).status_code == 200, "the session appears in the child")
    whole = replay(router, cid)
    assert whole.content.startswith(b"data: ") and whole.content.endswith(b"data: [DONE]\n\n")
