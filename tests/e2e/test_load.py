"""Load and faults on loopback: 64 concurrent clients on 4 slots, clients that vanish mid-prompt and
mid-stream, and the server's memory over a few hundred such requests. Bounded for CI."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import random
import threading

import httpx
import pytest

from tests.conftest import ONE_THREAD, serve
from tests.helpers import wait_idle

N_FAULT_REQUESTS = int(os.environ.get("LLAMASERVE_FAULT_REQUESTS", "240"))
MAX_RSS_GROWTH = 48 << 20  # bytes; see the closing note of issue 9 for measured figures


@pytest.fixture(scope="module")
def server(request):
    """Its own 4-slot server, so that the memory figures are this module's alone."""
    return serve(request, "load", "-np", "4", "-c", "4096", *ONE_THREAD)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def test_64_concurrent_clients_on_4_slots(server):
    prompts = [f"Fact {i}: the number after {i} is" for i in range(8)]
    body = lambda p: {"prompt": p, "n_predict": 6, "temperature": 0, "cache_prompt": False}
    with server.client() as c:
        expected = {p: c.post("/completion", json=body(p)).json()["content"] for p in prompts}

    async def run_all():
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=server.url, timeout=600, limits=limits) as ac:
            return await asyncio.gather(*(ac.post("/completion", json=body(prompts[i % 8])) for i in range(64)))

    responses = asyncio.run(run_all())
    assert [r.status_code for r in responses] == [200] * 64
    for i, r in enumerate(responses):
        assert r.json()["content"] == expected[prompts[i % 8]], i
    assert {r.json()["id_slot"] for r in responses} == {0, 1, 2, 3}
    with server.client() as c:
        wait_idle(c)


def _one_faulty_request(url: str, rng: random.Random, long_prompt: str) -> tuple[str, bool]:
    """One request of a random kind; returns (kind, whether it behaved as expected)."""
    kind = rng.choice(["plain", "plain", "stream", "stream-cut", "prompt-cut"])
    with httpx.Client(base_url=url, timeout=600) as c:
        if kind == "plain":
            r = c.post("/completion", json={"prompt": f"Item {rng.randrange(1000)}:", "n_predict": 3, "temperature": 0})
            return kind, r.status_code == 200 and r.json()["tokens_predicted"] == 3
        if kind == "stream":
            with c.stream("POST", "/completion", json={"prompt": "Say", "n_predict": 3, "stream": True}) as r:
                lines = [line for line in r.iter_lines() if line.startswith("data: ")]
            return kind, r.status_code == 200 and '"stop":true' in lines[-1]
        if kind == "stream-cut":  # the client leaves after a few events, mid-generation
            cut = rng.randrange(0, 4)
            with c.stream("POST", "/completion", json={"prompt": "Tell a story", "n_predict": 200, "ignore_eos": True, "stream": True}) as r:
                for i, _ in enumerate(r.iter_lines()):
                    if i >= cut:
                        break
            return kind, r.status_code == 200
        try:  # prompt-cut: the client gives up while the long prompt is still being read
            c.post("/completion", json={"prompt": long_prompt + str(rng.random()), "n_predict": 50, "ignore_eos": True},
                   timeout=rng.uniform(0.01, 0.2))
        except httpx.TimeoutException:
            pass
        return kind, True


def test_disconnects_free_slots_and_memory_stays_flat(server):
    """A few hundred requests, a third of whose clients disconnect mid-prompt or mid-stream."""
    long_prompt = "The quick brown fox jumps over the lazy dog. " * 30
    pid = server.proc.pid

    def batch(n: int, seed: int) -> list[tuple[str, bool]]:
        rng = random.Random(seed)
        seeds = [rng.random() for _ in range(n)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            return list(pool.map(lambda s: _one_faulty_request(server.url, random.Random(s), long_prompt), seeds))

    batch(40, seed=1)  # warm-up: allocator pools, caches, compiled paths
    with server.client() as c:
        wait_idle(c, timeout=120)
        cached_before = c.get("/props").json()["prompt_cache"]["bytes"]
    before = rss_bytes(pid)
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.wait(0.2):
            peak[0] = max(peak[0], rss_bytes(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    results = batch(N_FAULT_REQUESTS, seed=2)
    done.set()
    sampler.join()

    with server.client() as c:
        slots = wait_idle(c, timeout=120)  # every cancelled task gave its slot back
        assert not any(s["is_processing"] for s in slots)
        r = c.post("/completion", json={"prompt": "Hello", "n_predict": 2, "temperature": 0})
        assert r.status_code == 200
        # what the host prompt cache took meanwhile is held on purpose (bounded by --cache-ram): not a leak
        cached = c.get("/props").json()["prompt_cache"]["bytes"] - cached_before
    after = rss_bytes(pid) - max(0, cached)
    errors = [kind for kind, ok in results if not ok]
    cut = sum(kind.endswith("-cut") for kind, _ in results)
    print(f"\nfault run: {len(results)} requests ({cut} disconnected), {len(errors)} errors, "
          f"RSS before {before >> 10} KiB, after {after >> 10} KiB (less {cached >> 10} KiB more in the prompt cache), "
          f"growth {(after - before) >> 10:+d} KiB, peak growth {(peak[0] - before) >> 10:+d} KiB")
    assert errors == []
    assert cut > N_FAULT_REQUESTS // 5
    assert after - before < MAX_RSS_GROWTH
