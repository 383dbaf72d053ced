"""The prompt cache beyond the slots through real HTTP: a chat that lost its slot comes back from host
memory (OpenAI SDK), a shared system prompt attached across slots, and what /slots, /metrics, /props
and the request log show of it."""

from __future__ import annotations

import concurrent.futures
import re

import httpx
import openai
import pytest

from tests.conftest import serve

SYSTEM = "You are a terse assistant. You answer in one short sentence and never ask questions. " * 12


@pytest.fixture(scope="module")
def cache_server(request):
    # one slot: every other user's turn pushes a conversation out of it
    return serve(request, "prompt-cache", "-np", "1", "-c", "4096", "--metrics", "-v")


@pytest.fixture(scope="module")
def shared_server(request):
    return serve(request, "shared-prefix", "-np", "4", "-kvu", "-c", "8192", "--cache-ram", "0", "--metrics")


def chat(srv, messages):
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key="none", max_retries=0)
    r = client.chat.completions.create(model="m", messages=messages, max_tokens=8, temperature=0)
    return r.choices[0].message.content, r.model_extra["timings"]


def metric(srv, name: str) -> float:
    text = httpx.get(srv.url + "/metrics").text
    return float(re.search(rf"^llamacpp:{name}(?:_total)? (\S+)$", text, re.M).group(1))


def test_a_returning_user_gets_the_history_back_from_host_memory(cache_server):
    alice = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Name a colour."}]
    reply, first = chat(cache_server, alice)
    chat(cache_server, [{"role": "user", "content": "Bob here, unrelated: what is rain?"}])  # takes the slot
    alice += [{"role": "assistant", "content": reply}, {"role": "user", "content": "And a fruit?"}]
    _, second = chat(cache_server, alice)
    # all of Alice's first turn came back from host memory: only the new turn was evaluated
    assert second["cache_n"] >= first["prompt_n"] - 2, (first, second)
    assert second["prompt_n"] < 40
    assert metric(cache_server, "prompt_tokens_restored") >= second["cache_n"]
    assert metric(cache_server, "prompt_cache_bytes") > 0
    assert metric(cache_server, "prompt_cache_hits") >= 1
    props = httpx.get(cache_server.url + "/props").json()["prompt_cache"]
    assert props["limit_mib"] == 8192 and props["entries"] >= 1 and props["tokens"] > 0 and props["idle_slots"]
    log = cache_server.log()
    assert "updating prompt cache" in log and "restored" in log
    # the request log line counts the restored tokens as cached
    assert re.search(rf"cached={second['cache_n']}\b", log), log[-2000:]


def test_eight_users_with_one_system_prompt_evaluate_it_once(shared_server):
    questions = [f"Question {i}: what is {i} plus {i}?" for i in range(8)]
    before = metric(shared_server, "prompt_tokens")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        timings = list(pool.map(lambda q: chat(shared_server, [{"role": "system", "content": SYSTEM},
                                                               {"role": "user", "content": q}])[1], questions))
    evaluated = metric(shared_server, "prompt_tokens") - before
    n_prefix = max(t["cache_n"] for t in timings)
    assert n_prefix > 150
    # the prefix once, then each question: well under two copies of the prefix
    assert evaluated < n_prefix + sum(t["prompt_n"] for t in timings if t["cache_n"]) + 60, (evaluated, timings)
    assert sum(t["cache_n"] >= n_prefix - 30 for t in timings) >= 7
    assert metric(shared_server, "prompt_tokens_attached") >= 3 * (n_prefix - 30)
    slots = httpx.get(shared_server.url + "/slots").json()
    assert sum(s["n_shared_tokens"] > 150 for s in slots) >= 3
    assert all(s["n_cached_tokens"] >= s["n_shared_tokens"] for s in slots)
