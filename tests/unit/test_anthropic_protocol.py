"""Anthropic Messages requests → the chat request they run as (protocol.anthropic.to_chat_request), and on
to engine tasks through the chat path, with a stand-in tokenizer and template (tests/unit/protocol_fakes.py)."""

from __future__ import annotations

import json

import pytest

from llamaserve.errors import InvalidRequest, MediaUnsupported
from llamaserve.protocol import anthropic, openai
from tests.unit.protocol_fakes import TOKENIZER, chat_setup, defaults, text_of

USER = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("body, expected", [
    ({"max_tokens": 5, "messages": USER}, {"messages": USER, "max_tokens": 5}),
    # the system prompt (a string or text blocks) comes first
    ({"max_tokens": 5, "system": "be brief", "messages": USER},
     {"messages": [{"role": "system", "content": "be brief"}, *USER]}),
    ({"max_tokens": 5, "system": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "messages": USER},
     {"messages": [{"role": "system", "content": "a\nb"}, *USER]}),
    ({"max_tokens": 5, "messages": USER, "stop_sequences": ["END"], "model": "claude"},
     {"stop": ["END"], "model": "claude"}),
    # sampling fields pass through; Anthropic's own are consumed
    ({"max_tokens": 5, "messages": USER, "temperature": 0.5, "top_k": 3, "metadata": {"user_id": "u"}},
     {"temperature": 0.5, "top_k": 3, "metadata": None}),
    # thinking and output_config become template switches, a budget and a response format
    ({"max_tokens": 5, "messages": USER, "thinking": {"type": "enabled", "budget_tokens": 64}},
     {"chat_template_kwargs": {"enable_thinking": True}, "reasoning_budget_tokens": 64}),
    ({"max_tokens": 5, "messages": USER, "thinking": {"type": "disabled"}},
     {"chat_template_kwargs": {"enable_thinking": False}}),
    ({"max_tokens": 5, "messages": USER, "output_config": {"effort": "low"}},
     {"chat_template_kwargs": {"reasoning_effort": "low"}}),
    ({"max_tokens": 5, "messages": USER, "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
     {"response_format": {"type": "json_schema", "json_schema": {"name": "output", "schema": {"type": "object"}}}}),
    # tools and tool choice in OpenAI's shape
    ({"max_tokens": 5, "messages": USER, "tools": [{"name": "f", "input_schema": {"type": "object"}}],
      "tool_choice": {"type": "any"}},
     {"tools": [{"type": "function", "function": {"name": "f", "description": "", "parameters": {"type": "object"}}}],
      "tool_choice": "required"}),
    ({"max_tokens": 5, "messages": USER, "tool_choice": {"type": "tool", "name": "f"}},
     {"tool_choice": {"type": "function", "function": {"name": "f"}}}),
    # an assistant turn's tool use and the user's tool result
    ({"max_tokens": 5, "messages": [
        *USER,
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm"},
                                          {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "42"}]},
    ]}, {"messages": [
        *USER,
        {"role": "assistant", "content": "", "reasoning_content": "hm", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": json.dumps({"a": 1})}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "42"},
    ]}),
])
def test_to_chat_request(body, expected):
    chat = anthropic.to_chat_request(body)
    assert {k: chat.get(k) for k in expected} == expected


def test_count_only_needs_no_max_tokens():
    assert "max_tokens" not in anthropic.to_chat_request({"messages": USER}, count_only=True)


@pytest.mark.parametrize("body, allow_empty, expected", [
    ({"max_tokens": 5, "messages": USER, "stop_sequences": ["END"]}, False,
     {"prompt": "user: hi\nassistant:", "n_predict": 5, "stop": ["END"], "model": "alias"}),
    # llama-server's Anthropic route renders an empty conversation (the template's opening alone)
    ({"max_tokens": 5, "messages": []}, True, {"prompt": "assistant:", "n_predict": 5}),
])
def test_messages_run_as_chat_tasks(body, allow_empty, expected):
    plan, tasks = openai.chat_tasks(anthropic.to_chat_request(body), chat_setup(), TOKENIZER, defaults(), allow_empty)
    t = tasks[0]
    got = {"prompt": text_of(t.prompt), "n_predict": t.n_predict, "stop": t.stop, "model": plan.model}
    assert {k: got[k] for k in expected} == expected


@pytest.mark.parametrize("body, error, fragment", [
    ({"messages": USER}, InvalidRequest, "max_tokens"),
    ({"max_tokens": 0, "messages": USER}, InvalidRequest, '"max_tokens" must be at least 1'),
    ({"max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, InvalidRequest,
     '"role" must be "user" or "assistant"'),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": 5}]}, InvalidRequest, "must be a string or an array"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}, MediaUnsupported,
     "messages[0]"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "tool_use"}]}]}, InvalidRequest,
     "unsupported content block type 'tool_use' in a user message"),
    ({"max_tokens": 5, "messages": USER, "system": [{"type": "image"}]}, MediaUnsupported, "system"),
    ({"max_tokens": 5, "messages": USER, "thinking": {"type": "sometimes"}}, InvalidRequest, '"thinking.type" must be'),
    ({"max_tokens": 5, "messages": USER, "output_config": {"format": {"type": "xml"}}}, InvalidRequest,
     '"output_config.format" must be'),
    ({"max_tokens": 5, "messages": USER, "tools": [{"input_schema": {}}]}, InvalidRequest, 'tools[0]: "name" is required'),
    ({"max_tokens": 5, "messages": USER, "tool_choice": {"type": "tool"}}, InvalidRequest, '"tool_choice.type" must be'),
    ({"max_tokens": "5", "messages": USER}, InvalidRequest, "max_tokens"),
])
def test_errors(body, error, fragment):
    with pytest.raises(error) as info:
        anthropic.to_chat_request(body)
    assert fragment in info.value.message
    assert info.value.status == (500 if error is MediaUnsupported else 400)


def test_chat_path_errors_reach_anthropic_requests():
    # what the chat path refuses (here a tool choice naming no tool) is refused for Anthropic bodies too
    chat = anthropic.to_chat_request({"max_tokens": 5, "messages": USER, "tool_choice": {"type": "any"}})
    with pytest.raises(InvalidRequest, match='needs "tools"'):
        openai.chat_tasks(chat, chat_setup(), TOKENIZER, defaults())
