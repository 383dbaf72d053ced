"""The reasoning budget end to end: SmolLM2 rendered with QwQ's template (whose generation prompt opens
<think>), greedy, so the budgeted thoughts are exactly the first N tokens of the unbudgeted ones."""

from __future__ import annotations

import anthropic
import openai
import pytest

from tests.conftest import ONE_THREAD, serve
from tests.helpers import template_file

MESSAGE = " Enough thinking."
ASK = [{"role": "user", "content": "What is two plus two?"}]


@pytest.fixture(scope="module")
def qwq(request):
    return serve(request, "qwq", "-np", "2", "-c", "2048", *ONE_THREAD,
                 "--chat-template-file", template_file("Qwen-QwQ-32B.jinja"),
                 "--reasoning-budget", "4", "--reasoning-budget-message", MESSAGE)


@pytest.fixture(scope="module")
def thoughts(qwq) -> list[str]:
    """The unbudgeted greedy thoughts, token by token (the native route applies no budget)."""
    with qwq.client() as c:
        prompt = c.post("/apply-template", json={"messages": ASK}).json()["prompt"]
        assert prompt.endswith("<think>\n")
        r = c.post("/completion", json={"prompt": prompt, "n_predict": 12, "temperature": 0, "return_tokens": True}).json()
        pieces = [c.post("/detokenize", json={"tokens": [t]}).json()["content"] for t in r["tokens"]]
    assert "</think>" not in "".join(pieces)  # the model would think on: only the budget closes the block
    return pieces


def _chat(srv, **extra) -> str:
    oai = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0)
    msg = oai.chat.completions.create(model="m", messages=ASK, max_tokens=24, temperature=0,
                                      extra_body={"reasoning_format": "none", **extra}).choices[0].message
    return msg.content


def test_the_server_budget_closes_the_thoughts(qwq, thoughts):
    raw = _chat(qwq)
    assert raw.startswith("".join(thoughts[:4]) + MESSAGE + "</think>")


@pytest.mark.parametrize("field", ["reasoning_budget_tokens", "thinking_budget_tokens"])
def test_a_request_sets_its_own_budget_and_message(qwq, thoughts, field):
    assert _chat(qwq, **{field: 2, "reasoning_budget_message": ""}).startswith("".join(thoughts[:2]) + "</think>")
    assert _chat(qwq, **{field: 0}).startswith(MESSAGE + "</think>")


def test_the_budget_splits_reasoning_from_content(qwq, thoughts):
    oai = openai.OpenAI(base_url=qwq.url + "/v1", api_key="unused", max_retries=0)
    reasoning = ""
    for chunk in oai.chat.completions.create(model="m", messages=ASK, max_tokens=24, temperature=0, stream=True,
                                             extra_body={"reasoning_budget_tokens": 3}):
        for ch in chunk.choices:
            reasoning += (ch.delta.model_extra or {}).get("reasoning_content") or ""
    assert reasoning.strip() == ("".join(thoughts[:3]) + MESSAGE).strip()


def test_anthropic_thinking_budget(qwq, thoughts):
    client = anthropic.Anthropic(base_url=qwq.url, api_key="unused", max_retries=0)
    msg = client.messages.create(model="m", max_tokens=24, messages=ASK, extra_body={"temperature": 0},
                                 thinking={"type": "enabled", "budget_tokens": 5})
    thinking = [b.thinking for b in msg.content if b.type == "thinking"]
    assert thinking and thinking[0].strip() == ("".join(thoughts[:5]) + MESSAGE).strip()


def test_bad_budgets_are_refused(qwq):
    oai = openai.OpenAI(base_url=qwq.url + "/v1", api_key="unused", max_retries=0)
    for extra in ({"reasoning_budget_tokens": -2}, {"thinking_budget_tokens": "x"}, {"reasoning_budget_message": 5}):
        with pytest.raises(openai.BadRequestError):
            oai.chat.completions.create(model="m", messages=ASK, max_tokens=2, extra_body=extra)
