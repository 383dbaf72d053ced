"""Tool calls and reasoning end to end: the `openai` SDK against SmolLM2 rendered with real vendor templates."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from tests.conftest import serve
from tests.helpers import template_file

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 20}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "integer", "minimum": -12, "maximum": 14}},
                       "required": ["zone"], "additionalProperties": False},
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def hermes(request):
    return serve(request, "hermes", "-np", "2", "-c", "4096",
                 "--chat-template-file", template_file("NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja"))


@pytest.fixture(scope="module")
def qwen3(request):
    return serve(request, "qwen3", "-np", "2", "-c", "4096",
                 "--chat-template-file", template_file("Qwen-Qwen3-0.6B.jinja"))


def _client(srv) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0)


def _valid(call, tool) -> dict:
    args = json.loads(call.function.arguments)
    jsonschema.validate(args, tool["function"]["parameters"])
    return args


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
def test_required_and_named_choices_give_valid_calls(hermes, choice):
    with _client(hermes) as oai:
        r = oai.chat.completions.create(model="m", messages=ASK, tools=[WEATHER, TIME], tool_choice=choice,
                                        parallel_tool_calls=False, temperature=0, max_tokens=120)
    choice0 = r.choices[0]
    assert choice0.finish_reason == "tool_calls"
    calls = choice0.message.tool_calls
    assert calls and calls[0].type == "function" and calls[0].id
    if isinstance(choice, dict):
        assert {c.function.name for c in calls} == {"get_weather"}
    for call in calls:
        _valid(call, WEATHER if call.function.name == "get_weather" else TIME)
    assert "<tool_call>" not in (choice0.message.content or "")


def test_named_choice_is_honoured_over_other_tools(hermes):
    with _client(hermes) as oai:
        r = oai.chat.completions.create(model="m", messages=ASK, tools=[WEATHER, TIME], temperature=0, max_tokens=80,
                                        tool_choice={"type": "function", "function": {"name": "get_time"}})
    calls = r.choices[0].message.tool_calls
    assert calls and {c.function.name for c in calls} == {"get_time"}
    for call in calls:
        _valid(call, TIME)


def test_streamed_deltas_assemble_to_the_same_calls(hermes):
    kw = dict(model="m", messages=ASK, tools=[WEATHER], tool_choice="required", temperature=0, max_tokens=120)
    with _client(hermes) as oai:
        whole = oai.chat.completions.create(**kw).choices[0].message.tool_calls
        chunks = list(oai.chat.completions.create(stream=True, **kw))
    calls: dict[int, dict] = {}
    finishes = []
    for c in chunks:
        for ch in c.choices:
            assert not ch.delta.content or "<tool_call>" not in ch.delta.content
            if ch.finish_reason:
                finishes.append(ch.finish_reason)
            for d in ch.delta.tool_calls or []:
                if d.index not in calls:
                    assert d.id and d.type == "function" and d.function.name and d.function.arguments == ""
                    calls[d.index] = {"id": d.id, "name": d.function.name, "arguments": ""}
                else:
                    assert d.id is None and d.function.name is None  # the name is never repeated
                    calls[d.index]["arguments"] += d.function.arguments or ""
    assert finishes == ["tool_calls"]
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == [
        (w.function.name, json.loads(w.function.arguments)) for w in whole
    ]


def test_multi_turn_with_tool_results(hermes):
    with _client(hermes) as oai:
        first = oai.chat.completions.create(model="m", messages=ASK, tools=[WEATHER], tool_choice="required",
                                            temperature=0, max_tokens=120).choices[0].message
        call = first.tool_calls[0]
        history = ASK + [
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21, "sky": "sunny"}'},
        ]
        r = oai.chat.completions.create(model="m", messages=history, tools=[WEATHER], tool_choice="none",
                                        temperature=0, max_tokens=30)
    with hermes.client() as c:
        prompt = c.post("/apply-template", json={"messages": history, "tools": [WEATHER]}).json()
    assert r.choices[0].finish_reason in ("stop", "length") and r.choices[0].message.content
    assert r.choices[0].message.tool_calls is None
    assert "<tool_response>" in prompt["prompt"] and "sunny" in prompt["prompt"]


def test_user_grammar_with_tools_is_parsed(hermes):
    # A user grammar forces exact text; the output is still parsed for calls (llama-server refuses this).
    text = 'Checking. <tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "c"}}\n</tool_call>'
    grammar = "root ::= " + json.dumps(text)
    with _client(hermes) as oai:
        r = oai.chat.completions.create(model="m", messages=ASK, tools=[WEATHER], max_tokens=80, extra_body={"grammar": grammar})
        broken = oai.chat.completions.create(model="m", messages=ASK, tools=[WEATHER], max_tokens=80,
                                             extra_body={"grammar": "root ::= " + json.dumps('<tool_call>\n{"name": "get_weather", "arguments": {"city": </tool_call>')})
    msg = r.choices[0].message
    assert msg.content.strip() == "Checking."
    assert [(c.function.name, json.loads(c.function.arguments)) for c in msg.tool_calls] == [("get_weather", {"city": "Oslo", "unit": "c"})]
    assert r.choices[0].finish_reason == "tool_calls"
    # malformed markup never vanishes: it stays in content, and the log says why
    assert broken.choices[0].message.tool_calls is None
    assert "<tool_call>" in broken.choices[0].message.content
    assert "tool call left in content" in hermes.log()


def test_tool_choice_errors(hermes):
    with _client(hermes) as oai:
        with pytest.raises(openai.BadRequestError, match="not in"):
            oai.chat.completions.create(model="m", messages=ASK, tools=[WEATHER],
                                        tool_choice={"type": "function", "function": {"name": "nope"}})
        with pytest.raises(openai.BadRequestError, match="needs"):
            oai.chat.completions.create(model="m", messages=ASK, tool_choice="required")


THINK = "<think>\nThe user wants a greeting.\n</think>\n\nHello there!"


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_is_split(qwen3, stream):
    kw = dict(model="m", messages=[{"role": "user", "content": "Hi"}], max_tokens=120,
              extra_body={"grammar": "root ::= " + json.dumps(THINK)})
    with _client(qwen3) as oai:
        if not stream:
            msg = oai.chat.completions.create(**kw).choices[0].message
            reasoning, content = msg.model_extra["reasoning_content"], msg.content
        else:
            reasoning = content = ""
            for c in oai.chat.completions.create(stream=True, **kw):
                for ch in c.choices:
                    reasoning += (ch.delta.model_extra or {}).get("reasoning_content") or ""
                    content += ch.delta.content or ""
    assert reasoning.strip() == "The user wants a greeting."
    assert content.strip() == "Hello there!"


def test_reasoning_format_none_keeps_thoughts_in_content(qwen3):
    with _client(qwen3) as oai:
        msg = oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}], max_tokens=120,
                                          extra_body={"grammar": "root ::= " + json.dumps(THINK), "reasoning_format": "none"}).choices[0].message
    assert "<think>" in msg.content and not (msg.model_extra or {}).get("reasoning_content")
