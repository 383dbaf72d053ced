"""--sleep-idle-seconds: the model and its KV cache are unloaded after N idle seconds and loaded again by the
next request that needs them; the routes that report the server's state answer without waking it.

Each test has a server of its own (its log counts the unloads and reloads)."""

from __future__ import annotations

import concurrent.futures
import shutil
import time

import httpx
import pytest

from tests.conftest import MODEL, ONE_THREAD, shared_model, start_server
from tests.helpers import assert_error
from tests.media_files import data_uri

UNLOADED = "unloading the model and its KV cache"
RELOADED = "waking up: loading the model again"


@pytest.fixture()
def sleepy(tmp_path):
    srv = start_server(tmp_path, "--sleep-idle-seconds", "1", "-np", "2", "-c", "2048", "--metrics", *ONE_THREAD,
                       "--context-shift")  # so that an endless request runs until its client leaves
    yield srv
    srv.stop()


def is_sleeping(c) -> bool:
    r = c.get("/props")
    assert r.status_code == 200, r.text
    return r.json()["is_sleeping"]


def wait_asleep(c, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if is_sleeping(c):
            return
        time.sleep(0.1)
    raise AssertionError("the server did not go to sleep")


def complete(c, prompt: str = "Hello", n: int = 2) -> dict:
    r = c.post("/completion", json={"prompt": prompt, "n_predict": n, "temperature": 0, "cache_prompt": True})
    assert r.status_code == 200, r.text
    return r.json()


def test_state_routes_answer_without_waking_it(sleepy):
    with sleepy.client() as c:
        wait_asleep(c)
        for path in ("/health", "/v1/health", "/props", "/metrics", "/slots", "/models", "/v1/models", "/api/tags",
                     "/api/ps", "/api/version", "/lora-adapters", "/", "/cors-proxy"):
            r = c.get(path)
            assert r.status_code in (200, 403), (path, r.text)  # /cors-proxy: 403 without --ui-mcp-proxy
        assert c.get("/no-such-route").status_code == 404  # not a request for the model either
        assert c.post("/no-such-route", json={}).status_code == 404
        props = c.get("/props").json()
        assert props["is_sleeping"] is True
        assert props["model_path"] and props["default_generation_settings"]["n_ctx"] > 0  # what the model said at load
        assert c.get("/v1/models").json()["data"][0]["meta"]["n_vocab"] > 0
        assert all(not s["is_processing"] and s["n_ctx"] > 0 for s in c.get("/slots").json())
        assert is_sleeping(c)
    log = sleepy.log()
    assert log.count(UNLOADED) == 1 and RELOADED not in log


def test_a_request_wakes_it_and_the_kv_cache_was_gone(sleepy):
    with sleepy.client() as c:
        prompt = "The quick brown fox jumps over the lazy dog. " * 4
        complete(c, prompt)
        again = complete(c, prompt)  # awake: the slot still holds the prompt
        assert again["timings"]["cache_n"] > 0
        wait_asleep(c)
        reloads = sleepy.log().count(RELOADED)  # (the first request may have woken it already on a slow machine)
        woken = complete(c, prompt)  # waits for the reload, then evaluates the whole prompt again
        assert woken["timings"]["cache_n"] == 0
        assert woken["content"] == again["content"]  # the same model, greedy
        assert not is_sleeping(c)
    assert sleepy.log().count(RELOADED) == reloads + 1


def test_concurrent_wake_ups_load_it_once(sleepy):
    with sleepy.client() as c:
        wait_asleep(c)
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        def one(i: int) -> httpx.Response:
            with httpx.Client(base_url=sleepy.url, timeout=120) as client:
                if i % 2:
                    return client.post("/tokenize", json={"content": "Hello"})
                return client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": f"Hi {i}"}],
                                                                   "max_tokens": 2})
        answers = list(pool.map(one, range(6)))
    assert [r.status_code for r in answers] == [200] * 6, [r.text for r in answers]
    assert all(r.json()["tokens"] for r in answers[1::2])
    assert sleepy.log().count(RELOADED) == 1


@pytest.mark.parametrize("path, body", [
    ("/tokenize", {"content": "Hello world"}),
    ("/v1/messages/count_tokens", {"messages": [{"role": "user", "content": "Hello world"}]}),
    ("/apply-template", {"messages": [{"role": "user", "content": "Hello world"}]}),
])
def test_routes_that_read_the_tokenizer_wake_it(sleepy, path, body):
    with sleepy.client() as c:
        wait_asleep(c)
        r = c.post(path, json=body)
        assert r.status_code == 200, r.text
        assert not is_sleeping(c)


def test_metrics_while_asleep_report_the_last_work_once(sleepy):
    with sleepy.client() as c:
        complete(c, n=8)
        wait_asleep(c)

        def metric(name: str) -> float:
            r = c.get("/metrics")
            assert r.status_code == 200
            line = next(ln for ln in r.text.splitlines() if ln.startswith(f"llamacpp:{name} "))
            return float(line.split()[1])

        predicted = metric("tokens_predicted_total")
        assert predicted >= 8
        assert metric("predicted_tokens_seconds") == 0  # the scrape above took the window with the work
        first = c.get("/metrics").text
        assert c.get("/metrics").text == first  # nothing moves while it sleeps, scrapes included
        assert is_sleeping(c)
        assert metric("tokens_predicted_total") == predicted  # totals survive the unload


def test_metrics_asleep_equal_those_just_before_it(sleepy):
    """As llama-server: a sleeping server's /metrics is the snapshot taken on entering sleep, the KV
    gauges included (the cells are freed, but the cache the server had is what a balancer should see)."""
    with sleepy.client() as c:
        complete(c, n=4)
        c.get("/metrics")  # takes the throughput window with the work
        awake = c.get("/metrics").text
        assert "llamacpp:kv_cache_tokens " in awake and "llamacpp:kv_cache_tokens 0" not in awake
        wait_asleep(c)
        assert c.get("/metrics").text == awake


def test_a_generation_longer_than_the_idle_time_keeps_it_awake(sleepy):
    with sleepy.client() as c, sleepy.client() as watcher:
        complete(c)  # awake now, whatever happened since start-up
        reloads = sleepy.log().count(RELOADED)
        body = {"prompt": "Once upon a time", "n_predict": -1, "ignore_eos": True, "stream": True}  # endless
        checked = False
        with c.stream("POST", "/completion", json=body) as r:
            t0 = time.time()
            for line in r.iter_lines():
                if line and time.time() - t0 > 2.5:  # well past the idle time, still generating
                    assert not is_sleeping(watcher)
                    checked = True
                    break
        assert checked, "the stream ended early"
    assert sleepy.log().count(RELOADED) == reloads  # it never had to wake up meanwhile


@pytest.mark.parametrize("value", ["0", "-2", "soon"])
def test_bad_values_stop_start_up(tmp_path, value):
    srv = start_server(tmp_path, "--sleep-idle-seconds", value, wait=False)
    assert srv.proc.wait(30) == 2
    assert "--sleep-idle-seconds" in srv.log()


def test_router_children_sleep_on_their_own(tmp_path):
    router = start_server(tmp_path, "--sleep-idle-seconds", "1", *ONE_THREAD, router=True)
    try:
        with router.client() as c:
            name = c.get("/v1/models").json()["data"][0]["id"]
            r = c.post("/completion", json={"model": name, "prompt": "Hi", "n_predict": 1})
            assert r.status_code == 200, r.text
            deadline = time.time() + 20
            while not c.get("/props", params={"model": name}).json()["is_sleeping"]:
                assert time.time() < deadline, "the child did not go to sleep"
                time.sleep(0.2)
            r = c.post("/completion", json={"model": name, "prompt": "Hi", "n_predict": 1})
            assert r.status_code == 200, r.text
            assert c.get("/props", params={"model": name}).json()["is_sleeping"] is False
    finally:
        router.stop()


def test_a_failed_reload_fails_its_requests_and_the_next_one_tries_again(tmp_path):
    model = tmp_path / "model.gguf"
    shutil.copyfile(MODEL, model)
    srv = start_server(tmp_path, "-m", str(model), "--sleep-idle-seconds", "1", "-np", "1", "-c", "512", *ONE_THREAD)
    try:
        with srv.client() as c:
            wait_asleep(c)
            model.rename(tmp_path / "gone.gguf")  # the model file went away while it slept
            assert_error(c.post("/tokenize", json={"content": "Hi"}), 503, "unavailable_error", "could not be loaded again")
            assert is_sleeping(c) and c.get("/health").status_code == 200  # still serving, still asleep
            (tmp_path / "gone.gguf").rename(model)
            r = c.post("/completion", json={"prompt": "Hi", "n_predict": 1})
            assert r.status_code == 200, r.text
            assert not is_sleeping(c)
    finally:
        srv.stop()


def test_the_projector_sleeps_and_wakes_with_the_model(tmp_path):
    srv = start_server(tmp_path, "--sleep-idle-seconds", "1", "-np", "1", "-c", "2048", *ONE_THREAD,
                       "--mmproj", shared_model("synthetic-mmproj-smollm2.f32.gguf"))
    try:
        with srv.client() as c:
            def ask() -> dict:
                content = [{"type": "text", "text": "What is in the image?"}, {"type": "image_url", "image_url": {"url": data_uri(3)}}]
                r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": content}],
                                                         "max_tokens": 2, "temperature": 0})
                assert r.status_code == 200, r.text
                return r.json()

            awake = ask()
            wait_asleep(c)
            props = c.get("/props").json()
            assert props["modalities"]["vision"] is True and props["media"] is None  # said while it sleeps
            woken = ask()  # the projector loaded again with the model, its image cache empty
            assert woken["choices"][0]["message"] == awake["choices"][0]["message"]
            assert c.get("/props").json()["media"]["encoded"] == 1
    finally:
        srv.stop()


def test_the_draft_model_sleeps_and_wakes_with_the_model(tmp_path):
    srv = start_server(tmp_path, "--sleep-idle-seconds", "1", "-np", "1", "-c", "1024", "-md", MODEL,
                       "--spec-type", "draft-simple", "--spec-draft-n-max", "4", *ONE_THREAD)
    try:
        with srv.client() as c:
            body = {"prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "temperature": 0, "n_predict": 16, "cache_prompt": False}
            before = c.post("/completion", json=body).json()
            wait_asleep(c)
            after = c.post("/completion", json=body).json()  # the draft model loaded again too: it drafts
            assert after["content"] == before["content"]
            assert 0 < after["timings"]["draft_n_accepted"] <= after["timings"]["draft_n"]
    finally:
        srv.stop()
