"""python -m bench --soak: many requests of every kind against one server for a long time, watching the
process (RSS, open descriptors, threads) and checking every answer. A benchmark, not a test: it reports
figures (llama.cpp issues #27725 memory growth, #22360 slowing down, #17391 crashes under structured
output, #23694 unified KV running out of cells are what it looks for).

The mix, drawn round robin so that every kind recurs evenly over the run:
  native /completion and OpenAI chat, streamed and not; json_schema requests with schemas that differ
  (the output must validate); tool-call requests (the calls must parse, with JSON arguments); clients
  that abandon their stream after a few chunks; clients that read their stream slowly; requests that
  end on n_predict, on a stop string, and prompts over the context limit (a 400
  exceed_context_size_error is the valid answer there).

Every SAMPLE_S seconds: RSS, descriptors and threads of the server process (/proc), and the p50 latency
of the requests finished since the last sample. At the end: the table, and a plot where matplotlib is
installed (the bench extra).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass, field

import httpx
import jsonschema

SAMPLE_S = 5.0
SCHEMAS = [
    {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name", "age"]},
    {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]},
    {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 4},
    {"type": "object", "properties": {"color": {"enum": ["red", "green", "blue"]}}, "required": ["color"]},
]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}]
KINDS = ["native", "native_stream", "chat", "chat_stream", "schema", "tools", "abandon", "slow_reader",
         "stop_string", "over_context"]


@dataclass
class Outcome:
    kind: str
    t_end: float
    latency_s: float
    status: int
    valid: bool
    problem: str = ""


@dataclass
class Sample:
    t: float
    rss_mib: float
    cache_mib: float  # the host prompt cache (--cache-ram) in it, which grows by design up to its limit
    fds: int
    threads: int
    done: int
    p50_latency_s: float


@dataclass
class SoakReport:
    server: str
    requests: int
    concurrency: int
    wall_s: float
    status_5xx: int
    invalid: int
    by_kind: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    rss_after_warmup_mib: float = 0.0
    rss_end_mib: float = 0.0
    rss_growth_pct: float = 0.0
    p50_first_10pct_s: float = 0.0
    p50_last_10pct_s: float = 0.0
    p50_drift_pct: float = 0.0
    fds_start: int = 0
    fds_end: int = 0
    threads_start: int = 0
    threads_end: int = 0
    slots_idle_at_end: bool = False
    samples: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _proc(pid: int) -> tuple[float, int, int]:
    rss, threads = 0.0, 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd")), threads


def _body(kind: str, k: int, n_ctx: int) -> tuple[str, dict]:
    words = " ".join(f"w{(k * 7 + i) % 97}" for i in range(12))
    msgs = [{"role": "user", "content": f"Request {k}: say something about {words}."}]
    if kind in ("native", "native_stream"):
        return "/completion", {"prompt": f"Request {k}: {words}", "n_predict": 24, "stream": kind == "native_stream"}
    if kind in ("chat", "chat_stream", "abandon", "slow_reader"):
        return "/v1/chat/completions", {"messages": msgs, "max_tokens": 24, "stream": kind != "chat"}
    if kind == "schema":
        schema = SCHEMAS[k % len(SCHEMAS)]
        return "/v1/chat/completions", {"messages": msgs, "max_tokens": 64, "temperature": 0.7,
                                        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}}
    if kind == "tools":
        return "/v1/chat/completions", {"messages": [{"role": "user", "content": f"Weather in city {k}?"}],
                                        "tools": TOOLS, "tool_choice": "required", "max_tokens": 64}
    if kind == "stop_string":
        return "/completion", {"prompt": f"Count: 1, 2, 3, 4, {k % 5 + 5},", "n_predict": 48, "stop": [","]}
    return "/completion", {"prompt": "word " * (n_ctx + 64), "n_predict": 4}  # over_context


def _check(kind: str, k: int, status: int, body) -> tuple[bool, str]:
    """Whether the answer is what that kind of request must get."""
    if kind == "over_context":
        ok = status == 400 and isinstance(body, dict) and body.get("error", {}).get("type") == "exceed_context_size_error"
        return ok, "" if ok else f"over-context answered {status}"
    if status != 200:
        return False, f"HTTP {status}"
    try:
        if kind == "schema":
            text = body["choices"][0]["message"]["content"]
            if body["choices"][0]["finish_reason"] == "length":
                return True, ""  # cut by max_tokens: not a complete document, not a fault
            jsonschema.validate(json.loads(text), SCHEMAS[k % len(SCHEMAS)])
        elif kind == "tools":
            calls = body["choices"][0]["message"].get("tool_calls") or []
            if body["choices"][0]["finish_reason"] != "length":
                assert calls and all(isinstance(json.loads(c["function"]["arguments"]), dict) for c in calls)
        elif kind in ("native", "stop_string"):
            assert isinstance(body["content"], str)
            if kind == "stop_string":
                assert "," not in body["content"]
        elif kind == "chat":
            assert isinstance(body["choices"][0]["message"]["content"], str)
    except (AssertionError, KeyError, IndexError, TypeError, ValueError, jsonschema.ValidationError) as exc:
        return False, f"{kind}: {type(exc).__name__}: {str(exc)[:120]}"
    return True, ""


async def _stream(client: httpx.AsyncClient, kind: str, path: str, body: dict) -> tuple[int, bool, str]:
    async with client.stream("POST", path, json=body) as r:
        if r.status_code != 200:
            await r.aread()
            return r.status_code, False, f"HTTP {r.status_code}"
        n, done = 0, False
        async for line in r.aiter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                done = True
                break
            ev = json.loads(line[6:])  # every event must be valid JSON
            if "error" in ev:
                return r.status_code, False, f"error event: {ev['error']}"
            n += 1
            if kind == "abandon" and n >= 3:
                return r.status_code, True, ""  # leaves: the server must cancel it
            if kind == "slow_reader":
                await asyncio.sleep(0.05)
            if path == "/completion" and ev.get("stop"):
                done = True
        return r.status_code, done, "" if done else "stream ended without its end"


async def _one(client: httpx.AsyncClient, kind: str, k: int, n_ctx: int) -> Outcome:
    path, body = _body(kind, k, n_ctx)
    t0 = time.perf_counter()
    try:
        if body.get("stream"):
            status, valid, problem = await _stream(client, kind, path, body)
        else:
            r = await client.post(path, json=body)
            try:
                payload = r.json()
            except ValueError:
                payload = None
            status = r.status_code
            valid, problem = _check(kind, k, status, payload) if payload is not None else (False, "not JSON")
    except httpx.HTTPError as exc:
        status, valid, problem = 599, False, f"{type(exc).__name__}: {exc}"[:160]
    return Outcome(kind, time.time(), time.perf_counter() - t0, status, valid, problem)


async def soak(url: str, pid: int, server: str, requests: int, concurrency: int, n_ctx: int,
               progress=lambda line: None) -> SoakReport:
    outcomes: list[Outcome] = []
    samples: list[Sample] = []
    counter = itertools.count()
    t_start = time.time()
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)

    async def sampler() -> None:
        seen = 0
        while True:
            await asyncio.sleep(SAMPLE_S)
            rss, fds, threads = _proc(pid)
            cache = await _cache_mib(client)
            recent = [o.latency_s for o in outcomes[seen:] if o.kind not in ("abandon", "over_context")]
            seen = len(outcomes)
            samples.append(Sample(time.time() - t_start, rss, cache, fds, threads, seen, statistics.median(recent) if recent else 0.0))
            progress(f"  {seen}/{requests} requests, RSS {rss:.0f} MiB (prompt cache {cache:.0f}), {fds} fds, {threads} threads")

    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        async def worker() -> None:
            while (k := next(counter)) < requests:
                outcomes.append(await _one(client, KINDS[k % len(KINDS)], k, n_ctx))

        rss0, fds0, threads0 = _proc(pid)
        watch = asyncio.create_task(sampler())
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        watch.cancel()
        await asyncio.sleep(1.0)  # abandoned streams are noticed on the server's next step
        idle = not any(s.get("is_processing") for s in (await client.get("/slots")).json())
        cache1 = await _cache_mib(client)
    await asyncio.sleep(1.0)  # the client's connections closed: the server's ends of them go too
    rss1, fds1, threads1 = _proc(pid)
    return _report(server, requests, concurrency, time.time() - t_start, outcomes, samples,
                   (rss0, fds0, threads0), (rss1 - cache1, fds1, threads1), idle)


async def _cache_mib(client: httpx.AsyncClient) -> float:
    """llamaserve's host prompt cache in MiB (/props prompt_cache); 0 where a server does not say."""
    try:
        info = (await client.get("/props")).json().get("prompt_cache") or {}
    except (httpx.HTTPError, ValueError):
        return 0.0
    return info.get("bytes", 0) / 2**20


def _report(server, requests, concurrency, wall, outcomes, samples, start, end, idle) -> SoakReport:
    by_kind = {k: {"n": 0, "invalid": 0} for k in KINDS}
    for o in outcomes:
        by_kind[o.kind]["n"] += 1
        by_kind[o.kind]["invalid"] += not o.valid
    timed = sorted((o for o in outcomes if o.kind not in ("abandon", "over_context")), key=lambda o: o.t_end)
    tenth = max(1, len(timed) // 10)
    first = statistics.median(o.latency_s for o in timed[:tenth]) if timed else 0.0
    last = statistics.median(o.latency_s for o in timed[-tenth:]) if timed else 0.0
    warm = samples[len(samples) // 10] if samples else None  # after the first tenth of the run
    # the host prompt cache is taken out: it fills by design (up to --cache-ram); what is left must stay flat
    rss_w = warm.rss_mib - warm.cache_mib if warm else start[0]
    return SoakReport(
        server=server, requests=len(outcomes), concurrency=concurrency, wall_s=wall,
        status_5xx=sum(500 <= o.status < 600 for o in outcomes), invalid=sum(not o.valid for o in outcomes),
        by_kind=by_kind, problems=sorted({o.problem for o in outcomes if o.problem})[:10],
        rss_after_warmup_mib=rss_w, rss_end_mib=end[0], rss_growth_pct=100 * (end[0] - rss_w) / rss_w if rss_w else 0.0,
        p50_first_10pct_s=first, p50_last_10pct_s=last, p50_drift_pct=100 * (last - first) / first if first else 0.0,
        fds_start=start[1], fds_end=end[1], threads_start=start[2], threads_end=end[2], slots_idle_at_end=idle,
        samples=[asdict(s) for s in samples],
    )


def print_soak(r: SoakReport) -> None:
    print(f"soak: {r.server}, {r.requests} requests at concurrency {r.concurrency}, {r.wall_s:.0f} s")
    rows = [
        ("5xx answers", f"{r.status_5xx}", "0"),
        ("invalid answers", f"{r.invalid}", "0"),
        ("RSS less prompt cache, warm -> end (MiB)", f"{r.rss_after_warmup_mib:.0f} -> {r.rss_end_mib:.0f} ({r.rss_growth_pct:+.1f}%)", "within 2%"),
        ("p50 latency first 10% -> last 10% (s)", f"{r.p50_first_10pct_s:.3f} -> {r.p50_last_10pct_s:.3f} ({r.p50_drift_pct:+.1f}%)", "within 5%"),
        ("open descriptors start -> end", f"{r.fds_start} -> {r.fds_end}", "no leak"),
        ("threads start -> end", f"{r.threads_start} -> {r.threads_end}", "no leak"),
        ("every slot idle at the end", "yes" if r.slots_idle_at_end else "NO", "yes"),
    ]
    w = max(len(a) for a, _, _ in rows)
    for a, b, c in rows:
        print(f"  {a:<{w}}  {b:<28} target: {c}")
    print("  per kind: " + ", ".join(f"{k} {v['n']}" + (f" ({v['invalid']} invalid)" if v["invalid"] else "") for k, v in r.by_kind.items()))
    for p in r.problems:
        print(f"  problem: {p}")


def plot_soak(r: SoakReport, path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    t = [s["t"] for s in r.samples]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.plot(t, [s["rss_mib"] for s in r.samples], marker=".")
    a.set(xlabel="seconds", ylabel="RSS (MiB)", title="server memory")
    b.plot(t, [s["p50_latency_s"] for s in r.samples], marker=".")
    b.set(xlabel="seconds", ylabel="p50 latency (s)", title="latency of requests finished per sample")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True
