"""return_progress on a streamed request: prompt_progress updates while the prompt is evaluated, as
llama-server sends them (one before the first step, one after each step of -b tokens), on /completion,
/v1/chat/completions, /v1/completions and /v1/responses; with timings_per_token, timings beside them."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ONE_THREAD, serve

N_BATCH = 32
TEXT = "the quick brown fox jumps over the lazy dog " * 8  # about 80 tokens: three steps of 32


@pytest.fixture(scope="module")
def c(request):
    with serve(request, "progress", "-np", "1", "-c", "1024", "-b", str(N_BATCH), *ONE_THREAD).client() as client:
        yield client


def sse(c, path, body) -> list[dict]:
    events = []
    with c.stream("POST", path, json={**body, "stream": True}) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line[6:]))
    return events


def check_progress(events: list[dict], n_prompt: int, cached: int = 0) -> list[dict]:
    progress = [e["prompt_progress"] for e in events if "prompt_progress" in e]
    assert progress[0] == {**progress[0], "total": n_prompt, "cache": cached, "processed": cached}
    assert progress[-1]["processed"] == n_prompt
    steps = [p["processed"] for p in progress]
    assert steps == sorted(set(steps))  # each step moves on
    assert len(progress) == 1 + -(-(n_prompt - cached) // N_BATCH)
    # every update comes before the first generated text
    first_text = next(i for i, e in enumerate(events) if e.get("content") or e.get("choices", [{}])[0].get("text")
                      or e.get("choices", [{}])[0].get("delta", {}).get("content") or e.get("type") == "response.output_text.delta")
    assert max(i for i, e in enumerate(events) if "prompt_progress" in e) < first_text
    return progress


def n_tokens(c, text: str) -> int:
    return len(c.post("/tokenize", json={"content": text, "add_special": True}).json()["tokens"])


def test_native_completion_reports_each_step_with_timings(c):
    events = sse(c, "/completion", {"prompt": TEXT, "n_predict": 4, "return_progress": True, "timings_per_token": True,
                                    "cache_prompt": False, "temperature": 0})
    check_progress(events, n_tokens(c, TEXT))
    timed = [e["timings"] for e in events if "prompt_progress" in e]
    assert (timed[0]["prompt_n"], timed[0]["prompt_ms"], timed[0]["predicted_n"], timed[0]["predicted_ms"]) == (0, 0.0, 0, 0.0)
    assert [t["prompt_ms"] for t in timed] == sorted(t["prompt_ms"] for t in timed) and timed[-1]["prompt_ms"] > 0
    assert events[-1]["stop"] is True and events[-1]["tokens_predicted"] == 4


def test_a_cached_prefix_shows_as_cache(c):
    body = {"prompt": TEXT, "n_predict": 1, "return_progress": True, "cache_prompt": True, "temperature": 0}
    sse(c, "/completion", body)
    n = n_tokens(c, TEXT)
    check_progress(sse(c, "/completion", body), n, cached=n - 1)  # the last token is evaluated again


def test_no_progress_unless_asked_or_without_streaming(c):
    assert not any("prompt_progress" in e for e in sse(c, "/completion", {"prompt": TEXT, "n_predict": 2, "cache_prompt": False}))
    r = c.post("/completion", json={"prompt": TEXT, "n_predict": 2, "return_progress": True})
    assert r.status_code == 200 and "prompt_progress" not in r.json()


def test_openai_routes_carry_it_as_llama_server(c):
    messages = [{"role": "user", "content": TEXT}]
    chat = sse(c, "/v1/chat/completions", {"messages": messages, "max_tokens": 3, "return_progress": True, "cache_prompt": False})
    n_chat = c.post("/apply-template", json={"messages": messages}).json()["prompt"]
    check_progress(chat, n_tokens(c, n_chat))
    for e in chat:
        if "prompt_progress" in e:  # the role delta again, as llama-server sends it
            assert e["object"] == "chat.completion.chunk" and e["choices"][0]["delta"] == {"role": "assistant", "content": None}
    text = sse(c, "/v1/completions", {"prompt": TEXT, "max_tokens": 3, "return_progress": True, "cache_prompt": False})
    check_progress(text, n_tokens(c, TEXT))
    assert all(e["choices"][0]["text"] == "" for e in text if "prompt_progress" in e)


def test_responses_repeat_in_progress_with_it(c):
    events = sse(c, "/v1/responses", {"input": TEXT, "max_output_tokens": 3, "return_progress": True, "timings_per_token": True,
                                      "cache_prompt": False})
    progress = [e for e in events if "prompt_progress" in e]
    assert progress and all(e["type"] == "response.in_progress" for e in progress)
    assert progress[-1]["prompt_progress"]["processed"] == progress[-1]["prompt_progress"]["total"]
    assert any(e["type"] == "response.output_text.delta" and "timings" in e for e in events)
    assert "timings" in events[-1] and events[-1]["type"] == "response.completed"
