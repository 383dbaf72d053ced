"""Prompt-cache workloads (python -m bench --workload multiturn|shared-prefix): how many prompt tokens a
server really evaluates when conversations come back and when requests share a long system prompt.

multiturn: 12 users, 4 turns each over streaming /v1/chat/completions (greedy, max_tokens 32), one
~500-token system prompt shared by all, ~30-token user turns, each reply appended to its history; 4
clients take the turns in round robin, so every user comes back after others have used the slots.
shared-prefix: 8 concurrent requests with one ~1,000-token system prompt and distinct short questions.

Each (server, round) runs on a freshly started server. Per run: prompt tokens evaluated (the sum of
timings.prompt_n), prompt tokens in all, TTFT p50/p90 and wall time.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass

import httpx

from bench.load import _pct

WORDS = ("river stone garden lantern copper meadow harbor violet thunder candle orchard silver winter "
         "compass feather marble canyon ember willow beacon").split()


def words(n: int, seed: int) -> str:
    return " ".join(WORDS[(seed * 7 + i * 3) % len(WORDS)] for i in range(n))


def system_prompt(n_words: int) -> str:
    return "You are a helpful assistant. Background notes follow. " + words(n_words, 1) + "."


@dataclass
class CacheRun:
    server: str
    workload: str
    requests: int
    prompt_tokens: int  # in all prompts
    evaluated: int  # of them, actually evaluated (timings.prompt_n)
    ttft_p50_ms: float
    ttft_p90_ms: float
    wall_s: float
    errors: int
    error_samples: list[str]

    def as_dict(self) -> dict:
        return asdict(self)


async def _chat(client: httpx.AsyncClient, messages: list[dict], max_tokens: int) -> tuple[str, float, dict]:
    """One streaming chat: (reply text, TTFT in ms, final timings). Sent once more where the server had
    closed the kept-alive connection before reading it (llama-server does, under load)."""
    try:
        return await _chat_once(client, messages, max_tokens)
    except httpx.RemoteProtocolError:
        return await _chat_once(client, messages, max_tokens)


async def _chat_once(client: httpx.AsyncClient, messages: list[dict], max_tokens: int) -> tuple[str, float, dict]:
    body = {"model": "m", "messages": messages, "max_tokens": max_tokens, "temperature": 0, "stream": True}
    t0 = time.perf_counter()
    ttft, text, timings = 0.0, [], {}
    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
        if r.status_code >= 400:
            await r.aread()
            raise httpx.HTTPStatusError(f"HTTP {r.status_code}: {r.text[:160]}", request=r.request, response=r)
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("timings"):
                timings = chunk["timings"]
            for choice in chunk.get("choices", []):
                delta = choice.get("delta", {}).get("content")
                if delta:
                    if not ttft:
                        ttft = (time.perf_counter() - t0) * 1e3
                    text.append(delta)
    return "".join(text), ttft or (time.perf_counter() - t0) * 1e3, timings


def _summary(server: str, workload: str, outcomes: list, wall: float) -> CacheRun:
    ok = [o for o in outcomes if not isinstance(o, BaseException)]
    ttfts = [o[1] for o in ok]
    return CacheRun(
        server=server, workload=workload, requests=len(outcomes),
        prompt_tokens=sum(o[2].get("prompt_n", 0) + o[2].get("cache_n", 0) for o in ok),
        evaluated=sum(o[2].get("prompt_n", 0) for o in ok),
        ttft_p50_ms=_pct(ttfts, 50), ttft_p90_ms=_pct(ttfts, 90), wall_s=wall, errors=len(outcomes) - len(ok),
        error_samples=sorted({_describe(o) for o in outcomes if isinstance(o, BaseException)})[:3],
    )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


async def multiturn(url: str, server: str, users: int = 12, turns: int = 4, clients: int = 4, max_tokens: int = 32) -> CacheRun:
    system = system_prompt(470)
    histories = [[{"role": "system", "content": system}] for _ in range(users)]
    done = [[asyncio.Event() for _ in range(turns)] for _ in range(users)]
    jobs: asyncio.Queue = asyncio.Queue()
    for t in range(turns):
        for u in range(users):
            jobs.put_nowait((u, t))
    outcomes: list = []

    async def client_loop(client: httpx.AsyncClient) -> None:
        while not jobs.empty():
            u, t = jobs.get_nowait()
            if t:
                await done[u][t - 1].wait()
            histories[u].append({"role": "user", "content": f"User {u}, question {t}: " + words(24, u * 10 + t) + "?"})
            try:
                reply, ttft, timings = await _chat(client, histories[u], max_tokens)
                outcomes.append((reply, ttft, timings))
            except (httpx.HTTPError, json.JSONDecodeError) as exc:
                outcomes.append(exc)
                reply = ""
            histories[u].append({"role": "assistant", "content": reply})
            done[u][t].set()

    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
    return _summary(server, "multiturn", outcomes, time.perf_counter() - t0)


async def shared_prefix(url: str, server: str, n: int = 8, max_tokens: int = 32) -> CacheRun:
    system = system_prompt(950)
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        t0 = time.perf_counter()
        outcomes = await asyncio.gather(*(
            _chat(client, [{"role": "system", "content": system},
                           {"role": "user", "content": f"Question {i}: which word comes {i + 1} places after river?"}], max_tokens)
            for i in range(n)), return_exceptions=True)
    return _summary(server, "shared-prefix", list(outcomes), time.perf_counter() - t0)


WORKLOADS = {"multiturn": multiturn, "shared-prefix": shared_prefix}


def print_cache_table(runs: list[CacheRun], ours: str, theirs: str | None) -> None:
    header = f"{'workload':<15}{'server':<14}{'prompt tok':>11}{'evaluated':>10}{'TTFT p50':>10}{'TTFT p90':>10}{'wall s':>8}{'err':>5}"
    print(header)
    print("-" * len(header))
    for r in runs:
        print(f"{r.workload:<15}{r.server:<14}{r.prompt_tokens:>11}{r.evaluated:>10}{r.ttft_p50_ms:>10.1f}"
              f"{r.ttft_p90_ms:>10.1f}{r.wall_s:>8.2f}{r.errors:>5}")
    if not theirs:
        return
    print(f"\nratios {ours} / {theirs}, per round (evaluated tokens, TTFT p50, wall time: lower is better)")
    for workload in dict.fromkeys(r.workload for r in runs):
        a = [r for r in runs if r.workload == workload and r.server == ours]
        b = [r for r in runs if r.workload == workload and r.server == theirs]
        for k, (x, y) in enumerate(zip(a, b)):
            print(f"  {workload} round {k + 1}: evaluated {x.evaluated / max(y.evaluated, 1):.3f}  "
                  f"TTFT p50 {x.ttft_p50_ms / max(y.ttft_p50_ms, 1e-9):.3f}  wall {x.wall_s / max(y.wall_s, 1e-9):.3f}")
