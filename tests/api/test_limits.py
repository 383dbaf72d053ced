"""Request limits on a live server: body size, prompts per request, n_probs, the wait queue."""

from __future__ import annotations

import concurrent.futures
import json

import pytest

from tests.conftest import ONE_THREAD, serve
from tests.helpers import assert_error, wait_idle


@pytest.fixture(scope="module")
def limited(request):
    return serve(request, "limited", "-np", "1", "-c", "512", "--max-queue", "2",
                 "--max-prompts", "4", "--max-n-probs", "5", "--max-body-size", "64K", *ONE_THREAD)


@pytest.fixture()
def c(limited):
    with limited.client() as client:
        yield client


def test_body_size(c):
    big = json.dumps({"prompt": "x" * (64 << 10)}).encode()
    assert_error(c.post("/completion", content=big), 413, "invalid_request_error", "--max-body-size")

    def chunked():  # no Content-Length: the limit holds while the body streams in
        for _ in range(20):
            yield b" " * 4096

    assert_error(c.post("/tokenize", content=chunked()), 413, "invalid_request_error", "65536 bytes")
    assert c.post("/tokenize", json={"content": "x" * 60000}).status_code == 200


def test_prompts_per_request(c):
    assert_error(c.post("/completion", json={"prompt": ["a", "b", "c", "d", "e"], "n_predict": 1}), 400,
                 "invalid_request_error", "too many prompts")
    r = c.post("/completion", json={"prompt": ["a", "b", "c"], "n_predict": 1, "temperature": 0})
    assert r.status_code == 200 and len(r.json()) == 3


def test_n_probs(c):
    assert_error(c.post("/completion", json={"prompt": "a", "n_probs": 6}), 400, "invalid_request_error", "--max-n-probs")
    # a stream is refused with a status too, before any event is sent
    assert_error(c.post("/completion", json={"prompt": "a", "n_probs": 6, "stream": True}), 400, "invalid_request_error", "n_probs")
    d = c.post("/completion", json={"prompt": "a", "n_probs": 5, "n_predict": 1}).json()
    assert len(d["completion_probabilities"][0]["top_logprobs"]) == 5


def test_prompt_longer_than_the_context(c):
    err = assert_error(c.post("/completion", json={"prompt": "word " * 600, "n_predict": 1}), 400, "exceed_context_size_error")
    assert err["n_ctx"] == 512


def test_queue_limit(limited, c):
    wait_idle(c)
    pool = concurrent.futures.ThreadPoolExecutor(1)
    with limited.client() as streamer:
        with streamer.stream("POST", "/completion", json={"prompt": "Tell a story", "n_predict": 400, "ignore_eos": True, "stream": True}) as s:
            next(s.iter_lines())  # the one slot is now busy
            # 4 more tasks would leave 4 waiting: over --max-queue 2
            err = assert_error(c.post("/completion", json={"prompt": ["a", "b", "c", "d"], "n_predict": 1}), 503, "unavailable_error", "--max-queue")
            assert "busy" in err["message"]
            # 2 may wait: deferred, not dropped
            waiting = pool.submit(c.post, "/completion", json={"prompt": ["a", "b"], "n_predict": 2, "temperature": 0})
    # the stream's client left: its slot frees and the waiting request runs
    r = waiting.result(timeout=300)
    pool.shutdown()
    assert r.status_code == 200 and [d["tokens_predicted"] for d in r.json()] == [2, 2]
