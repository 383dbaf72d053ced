"""GET /metrics (--metrics): llama-server's Prometheus series count exactly what the engine did.

One server for the module, used by nothing else, so that the counters move only with these requests.
"""

from __future__ import annotations

import contextlib
import threading
import time

import httpx
import pytest

from tests.conftest import ONE_THREAD, serve
from tests.helpers import assert_error

COUNTERS = [
    "llamacpp:prompt_tokens_total", "llamacpp:prompt_tokens_cached_total", "llamacpp:prompt_seconds_total",
    "llamacpp:tokens_predicted_total", "llamacpp:tokens_predicted_seconds_total", "llamacpp:n_decode_total",
    "llamacpp:spec_decode_num_draft_tokens_total", "llamacpp:spec_decode_num_accepted_tokens_total",
    "llamacpp:spec_decode_num_drafts_total", "llamacpp:n_tokens_max",  # (a counter without _total, as llama-server's)
]
GAUGES = [
    "llamacpp:prompt_tokens_seconds", "llamacpp:predicted_tokens_seconds",
    "llamacpp:requests_processing", "llamacpp:requests_deferred", "llamacpp:n_busy_slots_per_decode",
    "llamacpp:kv_cache_usage_ratio", "llamacpp:kv_cache_tokens",
]
# the Gateway API Inference Extension's model server protocol, under the names its endpoint picker scrapes
GATEWAY_GAUGES = ["vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc",
                  "vllm:gpu_cache_usage_perc"]
ENDLESS = {"prompt": "Tell a long story", "n_predict": -1, "ignore_eos": True, "stream": True}


@pytest.fixture(scope="module")
def metrics_server(request):
    return serve(request, "metrics", "-np", "2", "-c", "1024", "--metrics", *ONE_THREAD,
                 "--context-shift")  # so that an endless request runs until its client leaves


@pytest.fixture()
def c(metrics_server):
    with metrics_server.client() as client:
        yield client


def scrape(c) -> tuple[dict[str, float], dict[str, str], str]:
    """(sample name with labels -> value, metric name -> type, the text)."""
    r = c.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert int(r.headers["Process-Start-Time-Unix"]) > 0
    values, types = {}, {}
    for line in r.text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values, types, r.text


def test_llama_server_series_with_types_and_help(c):
    values, types, text = scrape(c)
    for name in COUNTERS:
        assert types[name] == "counter" and name in values
    for name in GAUGES:
        assert types[name] == "gauge" and name in values
    for name in COUNTERS + GAUGES:
        assert f"# HELP {name} " in text
    assert values["llamacpp:requests_processing"] == 0 and values["llamacpp:requests_deferred"] == 0


def test_gateway_series_with_types(c):
    values, types, text = scrape(c)
    for name in GATEWAY_GAUGES:
        assert types[name] == "gauge" and f"# HELP {name} " in text
    assert values["vllm:num_requests_waiting"] == values["vllm:num_requests_running"] == 0
    assert values["vllm:kv_cache_usage_perc"] == values["vllm:gpu_cache_usage_perc"] == 0  # nothing runs
    assert 0 <= values["llamacpp:kv_cache_usage_ratio"] <= 1
    assert "vllm:lora_requests_info" not in types  # only with --lora (tests/api/test_lora.py)


@contextlib.contextmanager
def endless_streams(url: str, n: int):
    """n endless streaming completions, each past its first token (so each holds a slot) while inside."""
    held = []
    with contextlib.ExitStack() as stack:
        for _ in range(n):
            streamer = stack.enter_context(httpx.Client(base_url=url, timeout=60))
            r = stack.enter_context(streamer.stream("POST", "/completion", json=ENDLESS))
            # held: dropping the line iterator closes the connection (httpcore), and the server
            # rightly cancels the request of a client that left
            held.append(r.iter_lines())
            next(line for line in held[-1] if line.startswith("data: "))
        yield


def scrape_until(c, done, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        values, _, _ = scrape(c)
        if done(values) or time.monotonic() > deadline:
            return values
        time.sleep(0.05)


def test_queue_depth_and_running_with_more_requests_than_slots(metrics_server, c):
    extra = []  # a third request, on its own thread: it waits for one of the 2 slots
    waiter = threading.Thread(target=lambda: extra.append(c.post("/completion", json={"prompt": "Hi", "n_predict": 2})))
    with endless_streams(metrics_server.url, 2):
        waiter.start()
        queued = scrape_until(c, lambda v: v["vllm:num_requests_waiting"] >= 1)
    waiter.join(60)
    assert queued["vllm:num_requests_waiting"] == queued["llamacpp:requests_deferred"] == 1
    assert queued["vllm:num_requests_running"] == queued["llamacpp:requests_processing"] == 2
    assert extra[0].status_code == 200  # served once a slot was free: deferred, never dropped
    after = scrape_until(c, lambda v: v["vllm:num_requests_running"] == 0)
    assert after["vllm:num_requests_waiting"] == after["vllm:num_requests_running"] == 0


def test_kv_cache_usage_rises_during_a_long_request(metrics_server, c):
    with endless_streams(metrics_server.url, 1):
        first, _, _ = scrape(c)
        later = scrape_until(c, lambda v: v["vllm:kv_cache_usage_perc"] > first["vllm:kv_cache_usage_perc"])
    assert 0 < first["vllm:kv_cache_usage_perc"] < later["vllm:kv_cache_usage_perc"] <= 1
    assert later["vllm:gpu_cache_usage_perc"] == later["vllm:kv_cache_usage_perc"]
    assert later["llamacpp:kv_cache_usage_ratio"] >= later["vllm:kv_cache_usage_perc"]
    assert later["llamacpp:kv_cache_usage_ratio"] == later["llamacpp:kv_cache_tokens"] / 1024
    # once it ends, its cells stay cached in the slot: in use for llama.cpp's ratio, free for the gateway's
    idle = scrape_until(c, lambda v: v["vllm:num_requests_running"] == 0)
    assert idle["vllm:kv_cache_usage_perc"] == 0 and idle["llamacpp:kv_cache_tokens"] > 0


def test_counters_move_by_exactly_one_request(c):
    prompt = "Counting tokens for the metrics test: one, two, three, four."
    before, _, _ = scrape(c)
    r = c.post("/completion", json={"prompt": prompt, "n_predict": 8, "temperature": 0}).json()
    after, _, _ = scrape(c)

    def delta(name):
        return after[name] - before[name]

    t = r["timings"]
    assert delta("llamacpp:prompt_tokens_total") == t["prompt_n"] == r["tokens_evaluated"] - t["cache_n"]
    assert delta("llamacpp:prompt_tokens_cached_total") == t["cache_n"]
    assert delta("llamacpp:tokens_predicted_total") == r["tokens_predicted"] == t["predicted_n"]
    # one decode for the prompt (it fits one batch), then one per generated token after the first
    assert delta("llamacpp:n_decode_total") == r["tokens_predicted"]
    assert delta("llamacpp:prompt_seconds_total") > 0 and delta("llamacpp:tokens_predicted_seconds_total") > 0
    assert after["llamacpp:n_tokens_max"] >= r["tokens_cached"]
    assert after["llamacpp:predicted_tokens_seconds"] > 0 and after["llamacpp:prompt_tokens_seconds"] > 0
    assert after["llamacpp:n_busy_slots_per_decode"] >= 1

    # the same prompt again: all but its last token come from the cache and are not counted as processed
    again = c.post("/completion", json={"prompt": prompt, "n_predict": 8, "temperature": 0}).json()
    final, _, _ = scrape(c)
    assert again["timings"]["prompt_n"] == 1
    assert final["llamacpp:prompt_tokens_total"] - after["llamacpp:prompt_tokens_total"] == 1
    assert final["llamacpp:prompt_tokens_cached_total"] - after["llamacpp:prompt_tokens_cached_total"] == again["timings"]["cache_n"]
    # no work between two scrapes: the throughput gauges (averaged since the last scrape) are 0
    idle, _, _ = scrape(c)
    assert idle["llamacpp:predicted_tokens_seconds"] == 0 and idle["llamacpp:prompt_tokens_seconds"] == 0


def test_request_latency_histogram_by_route(c):
    key = 'llamaserve:request_duration_seconds_count{method="POST",route="/completion"}'
    before, types, _ = scrape(c)
    assert types["llamaserve:request_duration_seconds"] == "histogram"
    c.post("/completion", json={"prompt": "Hi", "n_predict": 1})
    c.post("/tokenize", json={"content": "Hi"})
    c.get("/nowhere")
    after, _, _ = scrape(c)
    assert after[key] - before.get(key, 0) == 1
    assert after['llamaserve:request_duration_seconds_count{method="POST",route="/tokenize"}'] >= 1
    assert after['llamaserve:request_duration_seconds_count{method="GET",route="unmatched"}'] >= 1
    # the routes that report the server's state are not timed: a scrape would change what the next one reads
    c.get("/props")
    c.get("/health")
    final, _, _ = scrape(c)
    assert not [k for k in final if k.startswith("llamaserve:request_duration") and ('"/metrics"' in k or '"/props"' in k or '"/health"' in k)]


def test_requests_processing_while_generating(metrics_server, c):
    # endless (context shift, no n_predict): still running at the scrape, however slow the machine
    with endless_streams(metrics_server.url, 1):
        busy, _, _ = scrape(c)
    assert busy["llamacpp:requests_processing"] == 1


def test_without_metrics_flag(client):
    err = assert_error(client.get("/metrics"), 501, "not_supported_error")
    assert err["message"] == "This server does not support metrics endpoint. Start it with `--metrics`"
