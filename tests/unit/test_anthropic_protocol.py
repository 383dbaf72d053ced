"""Anthropic Messages requests → the chat request they run as (protocol.anthropic.to_chat_request), and on
to engine tasks in the routes' one call (protocol.anthropic.chat_tasks), with a stand-in tokenizer, template
and server chat side (tests/unit/protocol_fakes.py): what each body asks of the engine, and which error wins."""

from __future__ import annotations

import json

import pytest

from llamaserve.errors import InvalidRequest, MediaUnsupported, ServerError, Unavailable
from llamaserve.protocol import anthropic
from tests.unit.protocol_fakes import (
    BOS, broken_template_server, chat_server, hermes_setup, loading_server, text_of,
)

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


@pytest.mark.parametrize("body, count_only, expected", [
    ({"max_tokens": 5, "messages": USER, "stop_sequences": ["END"]}, False,
     {"prompt": "user: hi\nassistant:", "n_predict": 5, "stop": ["END"], "model": "alias", "stream": False}),
    # llama-server's Anthropic route renders an empty conversation (the template's opening alone)
    ({"max_tokens": 5, "messages": []}, False, {"prompt": "assistant:", "n_predict": 5}),
    ({"max_tokens": 5, "system": "be brief", "messages": USER, "model": "claude", "stream": True}, False,
     {"prompt": "system: be brief\nuser: hi\nassistant:", "model": "claude", "stream": True}),
    # a final assistant turn is continued (the chat path's prefill)
    ({"max_tokens": 5, "messages": [*USER, {"role": "assistant", "content": "Sure"}]}, False,
     {"prompt": "user: hi\nassistant: Sure"}),
    # sampling fields reach the tasks; output_config.format becomes a grammar
    ({"max_tokens": 5, "messages": USER, "temperature": 0.5, "top_k": 3}, False,
     {"temperature": 0.5, "top_k": 3, "grammar": False}),
    ({"max_tokens": 5, "messages": USER, "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
     False, {"grammar": True}),
    # count_tokens: no max_tokens needed (the server's -n then); the same prompt as the message would run
    ({"messages": USER}, True, {"prompt": "user: hi\nassistant:", "n_predict": -1}),
    ({"system": "be brief", "messages": USER}, True, {"prompt": "system: be brief\nuser: hi\nassistant:"}),
])
def test_chat_tasks(body, count_only, expected):
    plan, tasks = anthropic.chat_tasks(body, chat_server(), count_only)
    assert len(tasks) == 1
    t = tasks[0]
    got = {"prompt": text_of(t.prompt), "n_predict": t.n_predict, "stop": t.stop, "model": plan.model,
           "stream": plan.stream, "temperature": t.params.temperature, "top_k": t.params.top_k,
           "grammar": bool(t.params.grammar)}
    assert t.prompt[0] == BOS
    assert {k: got[k] for k in expected} == expected


def test_chat_tasks_take_the_server_side():
    # the default system message (POST /props) where the request has none, --cache-reuse on the tasks
    plan, tasks = anthropic.chat_tasks({"max_tokens": 5, "messages": USER}, chat_server(system_prompt="sys", cache_reuse=8))
    assert plan.prompt_text == "system: sys\nuser: hi\nassistant:" and tasks[0].cache_reuse == 8


@pytest.mark.parametrize("tool_choice, lazy", [(None, True), ({"type": "auto"}, True), ({"type": "any"}, False),
                                               ({"type": "tool", "name": "f"}, False)])
def test_tools_constrain_the_calls(tool_choice, lazy):
    body = {"max_tokens": 5, "messages": USER, "tools": [{"name": "f", "input_schema": {"type": "object"}}]}
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    plan, tasks = anthropic.chat_tasks(body, chat_server(hermes_setup()))
    assert plan.tool_grammar is not None and tasks[0].params.grammar == plan.tool_grammar.gbnf
    assert tasks[0].params.grammar_lazy is lazy


@pytest.mark.parametrize("body, count_only, server, error, fragment", [
    # Anthropic's own checks come first: a body they refuse is a 400 even while the model loads
    ({"messages": USER}, False, loading_server, InvalidRequest, "max_tokens"),
    ({"max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, False, loading_server, InvalidRequest,
     '"role" must be "user" or "assistant"'),
    ({"max_tokens": 5, "messages": USER, "thinking": {"type": "x"}}, False, broken_template_server, InvalidRequest,
     '"thinking.type" must be'),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image"}]}]}, False, loading_server,
     InvalidRequest, 'an image block needs a "source"'),
    # a well-formed image reaches the chat plan, which refuses it on a text-only model (llama-server's 500)
    ({"max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}]},
     False, chat_server(), MediaUnsupported, "messages[0]"),
    # ... in the order the body is converted: max_tokens, system, messages, tools, tool_choice, thinking, output_config
    ({"max_tokens": 0, "system": [{"type": "image"}], "messages": USER}, False, chat_server(), InvalidRequest,
     '"max_tokens" must be at least 1'),
    ({"max_tokens": 5, "system": [{"type": "image"}], "messages": [{"role": "system", "content": "x"}]}, False,
     chat_server(), MediaUnsupported, "system"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": 5}], "tools": [{}]}, False, chat_server(),
     InvalidRequest, "must be a string or an array"),
    ({"max_tokens": 5, "messages": USER, "tools": [{}], "tool_choice": {"type": "x"}}, False, chat_server(),
     InvalidRequest, 'tools[0]: "name" is required'),
    ({"max_tokens": 5, "messages": USER, "tool_choice": {"type": "x"}, "thinking": {"type": "x"}}, False, chat_server(),
     InvalidRequest, '"tool_choice.type" must be'),
    ({"max_tokens": 5, "messages": USER, "thinking": {"type": "x"}, "output_config": {"format": 1}}, False, chat_server(),
     InvalidRequest, '"thinking.type" must be'),
    # then the server's chat side: 503 while loading, the template's error where it cannot be used, both
    # before the chat path looks at the body
    ({"max_tokens": 5, "messages": USER}, False, loading_server, Unavailable, "Loading model"),
    ({"max_tokens": 5, "messages": USER, "tool_choice": {"type": "any"}}, False, loading_server, Unavailable, "Loading"),
    ({"messages": USER}, True, broken_template_server, ServerError, "cannot be used"),
    # then the chat path's own checks
    ({"max_tokens": 5, "messages": USER, "tool_choice": {"type": "any"}}, False, chat_server(), InvalidRequest,
     'needs "tools"'),
    ({"max_tokens": 5, "messages": USER, "n": 9}, False, chat_server(), InvalidRequest, '"n" must be between 1 and 4'),
    # count_tokens refuses the empty conversation that /v1/messages renders
    ({"messages": []}, True, chat_server(), InvalidRequest, '"messages" must be a non-empty array'),
])
def test_which_error_wins(body, count_only, server, error, fragment):
    with pytest.raises(ServerError) as info:
        anthropic.chat_tasks(body, server, count_only)
    assert type(info.value) is error and fragment in info.value.message


@pytest.mark.parametrize("body, error, fragment", [
    ({"messages": USER}, InvalidRequest, "max_tokens"),
    ({"max_tokens": 0, "messages": USER}, InvalidRequest, '"max_tokens" must be at least 1'),
    ({"max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, InvalidRequest,
     '"role" must be "user" or "assistant"'),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": 5}]}, InvalidRequest, "must be a string or an array"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}, InvalidRequest,
     'the image source "type" must be "base64" or "url"'),
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
    with pytest.raises(InvalidRequest, match='needs "tools"'):
        anthropic.chat_tasks({"max_tokens": 5, "messages": USER, "tool_choice": {"type": "any"}}, chat_server())
