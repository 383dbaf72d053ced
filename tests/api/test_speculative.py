"""Speculative decoding through HTTP: the flags, the per-request `speculative` fields on the native and
OpenAI routes, timings.draft_n / draft_n_accepted, and what /slots, /props and /metrics report."""

from __future__ import annotations

import pytest

from tests.conftest import MODEL, ONE_THREAD, serve
from tests.helpers import assert_error, wait_idle

PASSAGE = "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n\ndef mul(a, b):\n    return a * b\n\n"
REPEAT = "<|im_start|>user\nRepeat this code exactly:\n" + PASSAGE + "<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def spec_server(request):
    return serve(request, "spec", "-np", "2", "-c", "2048", "--metrics", "-md", MODEL,
                 "--spec-type", "ngram-simple,draft-simple,ngram-cache", "--spec-ngram-simple-size-n", "3",
                 "--spec-ngram-simple-size-m", "8", "--spec-draft-n-max", "6", *ONE_THREAD)


@pytest.fixture()
def c(spec_server):
    with spec_server.client(timeout=120) as client:
        yield client


def complete(c, **body):
    r = c.post("/completion", json={"prompt": REPEAT, "temperature": 0, "n_predict": 40, "cache_prompt": False, **body})
    assert r.status_code == 200, r.text
    return r.json()


def test_drafts_change_nothing_but_the_timings(c):
    plain = complete(c, **{"speculative.type": "none"})
    ngram = complete(c)
    draft = complete(c, speculative={"type": "draft-simple", "n_max": 4})
    assert ngram["content"] == plain["content"] == draft["content"]
    assert PASSAGE[:30] in plain["content"]
    assert "draft_n" not in plain["timings"]
    for res in (ngram, draft):
        t = res["timings"]
        assert 0 < t["draft_n_accepted"] <= t["draft_n"]
    assert draft["generation_settings"]["speculative.types"] == "draft-simple"
    assert ngram["generation_settings"]["speculative.types"] == "ngram-simple,draft-simple"


def test_chat_routes_take_the_same_fields(c):
    body = {"messages": [{"role": "user", "content": "Repeat this code exactly:\n" + PASSAGE}],
            "temperature": 0, "max_tokens": 32, "cache_prompt": False}
    plain = c.post("/v1/chat/completions", json={**body, "speculative": {"type": "none"}})
    drafted = c.post("/v1/chat/completions", json={**body, "speculative.n_max": 3, "timings_per_token": True})
    assert plain.status_code == drafted.status_code == 200, drafted.text
    assert drafted.json()["choices"][0]["message"]["content"] == plain.json()["choices"][0]["message"]["content"]
    assert drafted.json()["timings"]["draft_n"] > 0


def test_bad_speculative_fields_are_400(c):
    for body, fragment in (({"speculative.n_max": -2}, "speculative.n_max"),
                           ({"speculative": {"type": "ngram-fancy"}}, "ngram-fancy"),
                           ({"speculative.type": "ngram-cache"}, "not built")):
        r = c.post("/completion", json={"prompt": "Hi", "n_predict": 2, **body})
        assert_error(r, 400, "invalid_request_error", fragment)


def test_slots_props_and_metrics_report_drafting(c):
    complete(c)
    slots = wait_idle(c)
    assert all(s["speculative"] for s in slots)
    props = c.get("/props").json()
    assert props["default_generation_settings"]["params"]["speculative.types"] == "ngram-simple,draft-simple"
    spec = props["speculative"]
    assert spec["types"] == ["ngram-simple", "draft-simple"] and spec["draft_model"] == MODEL
    assert "ngram-cache" in spec["not_built"]
    metrics = {line.split(" ")[0]: float(line.split(" ")[1]) for line in c.get("/metrics").text.splitlines()
               if line.startswith("llamacpp:spec_decode")}
    drafted = metrics["llamacpp:spec_decode_num_draft_tokens_total"]
    accepted = metrics["llamacpp:spec_decode_num_accepted_tokens_total"]
    assert 0 < accepted <= drafted and metrics["llamacpp:spec_decode_num_drafts_total"] > 0
    assert metrics['llamacpp:spec_decode_num_accepted_tokens_per_pos_total{position="0"}'] > 0


def test_not_built_types_are_announced_at_start_up(spec_server):
    assert "--spec-type ngram-cache: the ngram-cache type" in spec_server.log()
