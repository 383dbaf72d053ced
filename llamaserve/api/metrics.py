"""GET /metrics (--metrics): llama-server's Prometheus metrics, plus request latencies and the load
signals of the Gateway API Inference Extension's model server protocol.

The llamacpp:* series are read at scrape time from the scheduler's running totals (engine/stats.py),
with llama-server's names and help texts. Beside them, the same queue, running and KV-cache numbers under
the names an inference gateway's endpoint picker scrapes by default (vLLM's: see _gateway_series). All of
it is read from plain counters, never through the scheduler thread, so a scrape costs no model time. The
latency histograms are fed by the request-log middleware (api/app.py). Each app has its own registry
(tests create many apps in one process).
"""

from __future__ import annotations

import os
import time

from fastapi import APIRouter, Request
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.responses import Response

from llamaserve.errors import NotSupported

router = APIRouter()

# llama-server's exposition format version (prometheus-client's own default names 1.0.0).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Requests range from a /health (sub-millisecond) to a long generation (minutes).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class ServerMetrics:
    """One app's registry: the engine's series and the request latency histogram."""

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.registry = CollectorRegistry()
        self.registry.register(_EngineCollector(scheduler))
        self.latency = Histogram(
            "llamaserve:request_duration_seconds", "Time from request to the end of its response, by route",
            ["method", "route"], registry=self.registry, buckets=LATENCY_BUCKETS,
        )

    def observe(self, method: str, route: str, seconds: float) -> None:
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        # llama-server's one counter without the _total suffix, which prometheus-client always adds
        return generate_latest(self.registry).replace(b"llamacpp:n_tokens_max_total", b"llamacpp:n_tokens_max")


class _EngineCollector:
    """llama-server's llamacpp:* series. The two throughput gauges are averaged over the time since the
    previous scrape, as llama-server does; the totals at that scrape are kept here (scrapes run on the
    event loop, one at a time), so the scheduler's numbers are only ever read."""

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.last = (0, 0.0, 0, 0.0)  # prompt tokens, prompt seconds, generation steps, generation seconds

    def collect(self):
        sched = self.scheduler
        s = sched.stats
        occupancy = sched.occupancy()
        now = (s.prompt_tokens, s.prompt_seconds, s.predicted_steps, s.predicted_seconds)
        prompt_rate = _rate(now[0] - self.last[0], now[1] - self.last[1])
        predict_rate = _rate(now[2] - self.last[2], now[3] - self.last[3])
        self.last = now
        counters = (
            ("prompt_tokens", "Number of prompt tokens processed, excluding cached tokens", s.prompt_tokens),
            ("prompt_tokens_cached", "Number of prompt tokens reused from the cache", s.prompt_tokens_cached),
            ("prompt_seconds", "Total time spent processing prompts", s.prompt_seconds),
            # llamaserve's own: where cached prompt tokens came from (see engine/prompt_reuse.py)
            ("prompt_tokens_attached", "Prompt tokens attached from another slot's KV cells (shared prefixes)",
             s.prompt_tokens_attached),
            ("prompt_tokens_restored", "Prompt tokens restored from the host-memory prompt cache", s.prompt_tokens_restored),
            ("prompt_cache_hits", "Completion requests that started with part of their prompt cached", s.cache_hits),
            ("prompt_cache_misses", "Completion requests that evaluated their whole prompt", s.cache_misses),
            ("tokens_predicted", "Number of generation tokens processed", s.predicted_tokens),
            ("tokens_predicted_seconds", "Total time spent generating tokens", s.predicted_seconds),
            ("n_decode", "Total number of llama_decode() calls, excluding speculative decoding and multimodal decoding",
             s.n_decode),
            ("spec_decode_num_draft_tokens", "Speculative: Total draft tokens generated", s.draft_tokens),
            ("spec_decode_num_accepted_tokens", "Speculative: Total draft tokens accepted by the target model",
             s.draft_accepted),
            ("spec_decode_num_drafts", "Speculative: Total speculative decoding verification steps", s.draft_verifications),
            ("n_tokens_max", "Largest observed sequence length (prompt + generation)", s.n_tokens_max),
        )
        for name, doc, value in counters:
            yield CounterMetricFamily("llamacpp:" + name, doc, value=value)
        per_position = list(s.accepted_per_position)
        if per_position:  # as llama-server: one series per draft position, once anything was accepted
            family = CounterMetricFamily("llamacpp:spec_decode_num_accepted_tokens_per_pos",
                                         "Accepted tokens per draft position", labels=["position"])
            for i, n in enumerate(per_position):
                family.add_metric([str(i)], n)
            yield family
        cache = sched.prompt_cache_info()
        gauges = (
            ("prompt_cache_bytes", "Bytes held by the host-memory prompt cache (--cache-ram)", cache.bytes),
            ("prompt_cache_tokens", "Tokens held by the host-memory prompt cache", cache.tokens),
            ("prompt_cache_entries", "Entries in the host-memory prompt cache", cache.entries),
            ("prompt_tokens_seconds", "Average prompt throughput in tokens/s", prompt_rate),
            ("predicted_tokens_seconds", "Average generation throughput in tokens/s", predict_rate),
            ("requests_processing", "Number of requests processing", occupancy.busy),
            ("requests_deferred", "Number of requests deferred", occupancy.queued),
            ("n_busy_slots_per_decode", "Average number of busy slots per llama_decode() call",
             s.n_busy_slots / max(s.n_decode, 1)),
            # as llama-server had them: every cell in use, idle slots' cached prompts included
            ("kv_cache_usage_ratio", "KV-cache usage. 1 means 100 percent usage.",
             _ratio(occupancy.kv_tokens, occupancy.kv_size)),
            ("kv_cache_tokens", "KV-cache tokens.", occupancy.kv_tokens),
        )
        for name, doc, value in gauges:
            yield GaugeMetricFamily("llamacpp:" + name, doc, value=value)
        yield from _gateway_series(sched, occupancy)


def _gateway_series(sched, occupancy):
    """The Gateway API Inference Extension's model server protocol (docs/proposals/003-model-server-protocol):
    TotalQueuedRequests, TotalRunningRequests and KVCacheUtilization gauges, and the LoRA info gauge, named
    as vLLM names them, which is what the endpoint picker (EPP) scrapes from a pod of the default engine:
    so an InferencePool of llamaserve replicas needs no metric configuration. The KV usage is that of the
    running requests (vLLM counts cached blocks no request holds as free): an idle replica whose slots keep
    old prompts reads 0 here, not full as in llamacpp:kv_cache_usage_ratio."""
    busy_kv = _ratio(occupancy.kv_tokens_busy, occupancy.kv_size)
    gauges = (
        ("num_requests_waiting", "Requests waiting for a slot (TotalQueuedRequests)", occupancy.queued),
        ("num_requests_running", "Requests holding a slot (TotalRunningRequests)", occupancy.busy),
        ("kv_cache_usage_perc", "KV-cache usage of the running requests, 1 = full (KVCacheUtilization)", busy_kv),
        ("gpu_cache_usage_perc", "Former name of vllm:kv_cache_usage_perc (older endpoint pickers scrape it)", busy_kv),
    )
    for name, doc, value in gauges:
        yield GaugeMetricFamily("vllm:" + name, doc, value=value)
    adapters = sched.lora_adapters if sched.model is not None else []
    if adapters:  # as vLLM: only on a server with LoRA adapters
        # every adapter stays loaded beside the model, so all of them run and none ever waits to be loaded
        family = GaugeMetricFamily("vllm:lora_requests_info", "LoRA adapters loaded; the value is the time of this scrape",
                                   labels=["max_lora", "running_lora_adapters", "waiting_lora_adapters"])
        names = ",".join(os.path.splitext(os.path.basename(a.path))[0] for a in adapters)
        family.add_metric([str(len(adapters)), names, ""], time.time())
        yield family


def _ratio(n: float, of: float) -> float:
    return min(n / of, 1.0) if of > 0 else 0.0


def _rate(n: float, seconds: float) -> float:
    return n / seconds if seconds > 0 else 0.0


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    exporter: ServerMetrics | None = request.app.state.metrics
    if exporter is None:
        raise NotSupported("This server does not support metrics endpoint. Start it with `--metrics`")
    request.app.state.bridge.model  # 503 while loading
    return Response(exporter.render(), media_type=CONTENT_TYPE,
                    headers={"Process-Start-Time-Unix": str(int(exporter.scheduler.stats.t_start))})
