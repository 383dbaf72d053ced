"""Drive one server with N concurrent streaming clients and measure throughput and latency.

Native /completion (llama-server, llamaserve) or OpenAI /v1/completions (any server).
Each request has its own prefix so that prompt caching cannot skip work; generation is
greedy with a fixed length (ignore_eos).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
import uuid
from dataclasses import asdict, dataclass, field

import httpx

_WORDS = ("river mountain quiet engine garden yellow window market silver paper forest signal "
          "harbor candle winter ladder copper meadow thunder pocket velvet orbit lantern maple").split()


def make_prompt(n_words: int, tag: str) -> str:
    """About n_words tokens for SmolLM2-style tokenizers; the tag makes every prefix distinct."""
    words = itertools.islice(itertools.cycle(_WORDS), n_words - 4)
    return f"Request {tag}: " + " ".join(words)


@dataclass
class RequestStats:
    ok: bool
    tokens: int = 0
    ttft_ms: float = 0.0
    itl_ms: list[float] = field(default_factory=list)
    error: str = ""
    retries: int = 0


@dataclass
class LevelResult:
    server: str
    concurrency: int
    requests: int
    errors: int
    wall_s: float
    gen_tok_s: float
    req_s: float
    ttft_p50_ms: float
    ttft_p90_ms: float
    itl_p50_ms: float
    itl_p99_ms: float
    tokens: int
    error_samples: list[str] = field(default_factory=list)  # the first few distinct errors, to say what failed
    retries: int = 0  # requests sent again because the server had closed their kept-alive connection

    def as_dict(self) -> dict:
        return asdict(self)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))
    return s[k]


async def _one(client: httpx.AsyncClient, api: str, prompt: str, n_predict: int, model: str) -> RequestStats:
    if api == "native":
        url, body = "/completion", {"prompt": prompt, "n_predict": n_predict, "ignore_eos": True, "temperature": 0,
                                    "stream": True, "cache_prompt": True}
    else:
        url, body = "/v1/completions", {"model": model, "prompt": prompt, "max_tokens": n_predict, "temperature": 0,
                                        "stream": True, "ignore_eos": True}
    t0 = time.perf_counter()
    last = None
    stats = RequestStats(ok=True)
    try:
        try:
            r = await client.send(client.build_request("POST", url, json=body), stream=True)
        except httpx.RemoteProtocolError:
            # the server closed a kept-alive connection as the request went out: it never saw the
            # request, so send it again (on a new connection; the time spent counts in its TTFT)
            stats.retries += 1
            r = await client.send(client.build_request("POST", url, json=body), stream=True)
        try:
            if r.status_code != 200:
                return RequestStats(ok=False, error=f"HTTP {r.status_code}: {(await r.aread())[:200]!r}")
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                ev = json.loads(line[6:])
                if "error" in ev:
                    return RequestStats(ok=False, error=str(ev["error"]))
                text = ev["content"] if api == "native" else (ev.get("choices") or [{}])[0].get("text", "")
                is_final = ev.get("stop") is True if api == "native" else False
                if is_final and not text:
                    continue
                now = time.perf_counter()
                if last is None:
                    stats.ttft_ms = (now - t0) * 1e3
                else:
                    stats.itl_ms.append((now - last) * 1e3)
                last = now
                stats.tokens += 1
        finally:
            await r.aclose()
    except httpx.HTTPError as exc:
        return RequestStats(ok=False, error=f"{type(exc).__name__}: {exc}")
    return stats


async def run_level(url: str, name: str, api: str, concurrency: int, requests_per_client: int,
                    prompt_words: int, n_predict: int, model: str = "model") -> LevelResult:
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        run_id = uuid.uuid4().hex[:8]

        async def worker(w: int) -> list[RequestStats]:
            out = []
            for i in range(requests_per_client):
                out.append(await _one(client, api, make_prompt(prompt_words, f"{run_id}-{w}-{i}"), n_predict, model))
            return out

        t0 = time.perf_counter()
        per_worker = await asyncio.gather(*(worker(w) for w in range(concurrency)))
        wall = time.perf_counter() - t0
    stats = [s for ws in per_worker for s in ws]
    good = [s for s in stats if s.ok]
    tokens = sum(s.tokens for s in good)
    ttft = [s.ttft_ms for s in good]
    itl = [x for s in good for x in s.itl_ms]
    return LevelResult(
        server=name, concurrency=concurrency, requests=len(stats), errors=len(stats) - len(good), wall_s=wall,
        gen_tok_s=tokens / wall if wall > 0 else 0.0, req_s=len(good) / wall if wall > 0 else 0.0,
        ttft_p50_ms=statistics.median(ttft) if ttft else float("nan"), ttft_p90_ms=_pct(ttft, 90),
        itl_p50_ms=statistics.median(itl) if itl else float("nan"), itl_p99_ms=_pct(itl, 99), tokens=tokens,
        error_samples=list(dict.fromkeys(s.error for s in stats if not s.ok))[:3],
        retries=sum(s.retries for s in stats),
    )


async def warm_up(url: str, api: str, model: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await _one(client, api, make_prompt(20, "warmup-" + uuid.uuid4().hex[:6]), 8, model)
