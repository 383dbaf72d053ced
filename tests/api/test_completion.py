"""/completion through HTTP against the real model: shapes, streaming, determinism, batching, caching."""

from __future__ import annotations

import concurrent.futures
import json

import httpx
import pytest

PROMPT = "The capital of France is"


def complete(client, **body):
    body.setdefault("temperature", 0)
    r = client.post("/completion", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def stream_events(client, **body):
    body.setdefault("temperature", 0)
    events = []
    with client.stream("POST", "/completion", json={**body, "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


def test_response_fields(client):
    d = complete(client, prompt=PROMPT, n_predict=8, return_tokens=True)
    for key in ("index", "content", "tokens", "id_slot", "stop", "model", "tokens_predicted", "tokens_evaluated",
                "generation_settings", "prompt", "has_new_line", "truncated", "stop_type", "stopping_word",
                "tokens_cached", "timings"):
        assert key in d, key
    assert d["stop"] is True
    assert d["stop_type"] == "limit"
    assert d["tokens_predicted"] == 8 == len(d["tokens"])
    assert d["tokens_evaluated"] == 5
    assert d["prompt"] == PROMPT
    assert d["content"].startswith(" Paris")
    assert d["generation_settings"]["n_predict"] == 8
    assert d["generation_settings"]["temperature"] == 0
    t = d["timings"]
    assert t["predicted_n"] == 8 and t["prompt_n"] + t["cache_n"] == 5
    for key in ("prompt_ms", "prompt_per_token_ms", "prompt_per_second", "predicted_ms", "predicted_per_token_ms", "predicted_per_second"):
        assert t[key] >= 0
    # tokens_cached: prompt + generated - 1 (the last sampled token is never decoded)
    assert d["tokens_cached"] == 5 + 8 - 1
    assert "completion_probabilities" not in d
    # without return_tokens the token list stays empty
    assert complete(client, prompt=PROMPT, n_predict=2)["tokens"] == []


def test_completions_alias_route(client):
    a = complete(client, prompt=PROMPT, n_predict=6)
    r = client.post("/completions", json={"prompt": PROMPT, "n_predict": 6, "temperature": 0})
    assert r.status_code == 200 and r.json()["content"] == a["content"]


def test_stream_equals_non_stream(client):
    body = dict(prompt="Once upon a time", n_predict=24)
    full = complete(client, **body)
    events = stream_events(client, **body)
    assert events[-1]["stop"] is True and all(e["stop"] is False for e in events[:-1])
    assert "".join(e["content"] for e in events) == full["content"]
    final = events[-1]
    assert final["tokens_predicted"] == 24 and final["stop_type"] == "limit"
    assert "timings" in final and "generation_settings" in final
    partial = events[0]
    assert set(("index", "content", "tokens", "stop", "id_slot", "tokens_predicted", "tokens_evaluated")) <= set(partial)


def test_greedy_is_deterministic(client):
    a = complete(client, prompt="def fibonacci(n):", n_predict=32, cache_prompt=False)
    b = complete(client, prompt="def fibonacci(n):", n_predict=32, cache_prompt=False)
    assert a["content"] == b["content"] and len(a["content"]) > 20


def test_seeded_sampling_is_reproducible(client):
    body = dict(prompt="Write a story:", n_predict=24, temperature=1.0, seed=42, top_k=0, top_p=1.0, min_p=0.0)
    assert complete(client, **body)["content"] == complete(client, **body)["content"]


def test_concurrent_requests_match_sequential(server):
    prompts = [f"Question {i}: what is {i} plus {i}? Answer:" for i in range(12)]
    body = lambda p: {"prompt": p, "n_predict": 24, "temperature": 0, "cache_prompt": False}
    with server.client() as c:
        sequential = [c.post("/completion", json=body(p)).json()["content"] for p in prompts]

    def one(p):
        with httpx.Client(base_url=server.url, timeout=120) as c:
            return c.post("/completion", json=body(p)).json()

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        results = list(pool.map(one, prompts))
    assert [r["content"] for r in results] == sequential
    assert len({r["id_slot"] for r in results}) == 4  # all four slots took part


def test_prefix_reuse(client):
    shared = "You are a helpful assistant. " * 30
    first = complete(client, prompt=shared + "Tell me about cats.", n_predict=4)
    second = complete(client, prompt=shared + "Tell me about dogs.", n_predict=4)
    n_total = second["tokens_evaluated"]
    t = second["timings"]
    assert t["cache_n"] >= n_total - 8, t  # only the new tail is evaluated
    assert t["prompt_n"] == n_total - t["cache_n"] and t["prompt_n"] <= 8
    assert second["id_slot"] == first["id_slot"]
    # without cache_prompt everything is evaluated again
    third = complete(client, prompt=shared + "Tell me about dogs.", n_predict=4, cache_prompt=False)
    assert third["timings"]["cache_n"] == 0 and third["timings"]["prompt_n"] == n_total


def test_identical_prompt_reevaluates_one_token(client):
    complete(client, prompt="Repeat after me: hello", n_predict=2)
    again = complete(client, prompt="Repeat after me: hello", n_predict=2)
    assert again["timings"]["prompt_n"] == 1


def test_id_slot_pins_a_slot(client):
    for slot in (2, 3):
        assert complete(client, prompt=PROMPT, n_predict=2, id_slot=slot)["id_slot"] == slot


def test_stop_string_across_token_boundary(client):
    base = complete(client, prompt=PROMPT, n_predict=20, return_tokens=True)
    pieces = [client.post("/tokenize", json={"content": ""}).json()]  # warm the route
    text = base["content"]
    # a stop string that starts inside one token and ends inside the next
    tokens = base["tokens"]
    pieces = [client.post("/detokenize", json={"tokens": [t]}).json()["content"] for t in tokens]
    i = next(i for i in range(3, len(pieces) - 1) if len(pieces[i]) >= 2 and len(pieces[i + 1]) >= 2)
    stop = pieces[i][-2:] + pieces[i + 1][:2]
    offset = len("".join(pieces[:i + 1])) - 2
    assert text.find(stop) == offset
    d = complete(client, prompt=PROMPT, n_predict=20, stop=[stop, "never-seen-stop"])
    assert d["stop_type"] == "word" and d["stopping_word"] == stop
    assert d["content"] == text[:offset]
    events = stream_events(client, prompt=PROMPT, n_predict=20, stop=[stop])
    streamed = "".join(e["content"] for e in events)
    assert streamed == text[:offset]
    assert stop not in streamed


def test_eos_stop(client):
    # The chat template makes the model answer and end its turn with <|im_end|> (an EOG token).
    prompt = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    d = complete(client, prompt=prompt, n_predict=64)
    assert d["stop_type"] == "eos"
    assert d["content"] == "The capital of France is Paris."
    ignoring = complete(client, prompt=prompt, n_predict=12, ignore_eos=True)
    assert ignoring["stop_type"] == "limit" and ignoring["tokens_predicted"] == 12


def test_token_and_mixed_prompts(client):
    tokens = client.post("/tokenize", json={"content": PROMPT}).json()["tokens"]
    by_text = complete(client, prompt=PROMPT, n_predict=6)["content"]
    assert complete(client, prompt=tokens, n_predict=6)["content"] == by_text
    assert complete(client, prompt=["The capital of", *client.post("/tokenize", json={"content": " France is"}).json()["tokens"]], n_predict=6)["content"] == by_text


def test_multiple_prompts_give_one_result_each(client):
    prompts = ["One, two,", "Monday, Tuesday,", PROMPT]
    r = client.post("/completion", json={"prompt": prompts, "n_predict": 5, "temperature": 0})
    out = r.json()
    assert isinstance(out, list) and [o["index"] for o in out] == [0, 1, 2]
    singles = [complete(client, prompt=p, n_predict=5)["content"] for p in prompts]
    assert [o["content"] for o in out] == singles
    events = stream_events(client, prompt=prompts, n_predict=5)
    for i, expected in enumerate(singles):
        assert "".join(e["content"] for e in events if e["index"] == i) == expected
    assert sum(1 for e in events if e["stop"]) == 3


def test_n_probs(client):
    d = complete(client, prompt=PROMPT, n_predict=3, n_probs=3)
    probs = d["completion_probabilities"]
    assert len(probs) == 3
    first = probs[0]
    assert set(first) == {"id", "token", "bytes", "logprob", "top_logprobs"}
    assert len(first["top_logprobs"]) == 3
    assert first["top_logprobs"][0]["id"] == first["id"]  # greedy picks the most likely token
    lps = [p["logprob"] for p in first["top_logprobs"]]
    assert lps == sorted(lps, reverse=True) and all(lp <= 0 for lp in lps)
    post = complete(client, prompt=PROMPT, n_predict=2, n_probs=2, post_sampling_probs=True)["completion_probabilities"][0]
    assert set(post) == {"id", "token", "bytes", "prob", "top_probs"}
    assert 0 < post["prob"] <= 1
    events = stream_events(client, prompt=PROMPT, n_predict=3, n_probs=2)
    assert all(len(e["completion_probabilities"]) == 1 for e in events if not e["stop"] and e["content"])


def test_sampling_parameters(client):
    body = dict(
        prompt="List some fruits:", n_predict=16, temperature=0.7, seed=7, dynatemp_range=0.2, dynatemp_exponent=1.2,
        top_k=20, top_p=0.9, min_p=0.02, typical_p=0.95, top_n_sigma=2.0, repeat_penalty=1.1, repeat_last_n=32,
        presence_penalty=0.2, frequency_penalty=0.2, dry_multiplier=0.8, dry_base=1.75, dry_allowed_length=2,
        dry_penalty_last_n=64, dry_sequence_breakers=["\n"], xtc_probability=0.5, xtc_threshold=0.1, min_keep=1,
        samplers=["penalties", "dry", "top_k", "top_p", "min_p", "xtc", "temperature"],
    )
    a = complete(client, **body)
    assert a["tokens_predicted"] == 16 and a["content"] == complete(client, **body)["content"]
    for mirostat in (1, 2):
        m = complete(client, prompt="List some fruits:", n_predict=8, temperature=0.8, mirostat=mirostat, seed=3)
        assert m["tokens_predicted"] == 8 and m["generation_settings"]["mirostat"] == mirostat
    assert complete(client, prompt="Hi", n_predict=4, temperature=0.8, samplers="kpt", seed=1)["generation_settings"]["samplers"] == ["top_k", "top_p", "temperature"]


def test_logit_bias_forms(client):
    base = complete(client, prompt=PROMPT, n_predict=1, return_tokens=True)
    banned = base["tokens"][0]
    for bias in ([[banned, False]], {str(banned): -100}, [{"token": banned, "bias": False}]):
        d = complete(client, prompt=PROMPT, n_predict=1, return_tokens=True, logit_bias=bias)
        assert d["tokens"][0] != banned
    # string keys are tokenized and every token is biased
    piece = client.post("/detokenize", json={"tokens": [banned]}).json()["content"]
    d = complete(client, prompt=PROMPT, n_predict=1, return_tokens=True, logit_bias=[[piece, False]])
    assert d["tokens"][0] != banned
    # a large positive bias forces a token
    forced = complete(client, prompt=PROMPT, n_predict=3, return_tokens=True, logit_bias=[[11, 100]])
    assert forced["tokens"] == [11, 11, 11]


def test_response_fields_selection(client):
    d = complete(client, prompt=PROMPT, n_predict=2, response_fields=["content", "generation_settings/n_predict"])
    assert set(d) == {"content", "generation_settings/n_predict"} and d["generation_settings/n_predict"] == 2


def test_timings_per_token(client):
    events = stream_events(client, prompt=PROMPT, n_predict=4, timings_per_token=True)
    assert all("timings" in e for e in events)


def test_server_wide_defaults_apply(client):
    d = complete(client, prompt=PROMPT, n_predict=1, temperature=None)
    g = d["generation_settings"]
    assert (g["temperature"], g["top_k"], g["top_p"], g["min_p"]) == (pytest.approx(0.8), 40, pytest.approx(0.95), pytest.approx(0.05))
