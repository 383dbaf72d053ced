"""OpenAI Responses requests → the chat request they run as (protocol.responses.to_chat_request), and on to
engine tasks through the chat path, with a stand-in tokenizer and template (tests/unit/protocol_fakes.py)."""

from __future__ import annotations

import pytest

from llamaserve.errors import InvalidRequest
from llamaserve.protocol import openai, responses
from tests.unit.protocol_fakes import TOKENIZER, chat_setup, defaults, text_of

USER = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("body, expected", [
    ({"input": "hi"}, {"messages": USER}),
    ({"input": "hi", "instructions": "be brief"}, {"messages": [{"role": "system", "content": "be brief"}, *USER]}),
    ({"input": [{"role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]}]},
     {"messages": [{"role": "user", "content": "a\nb"}]}),
    ({"input": "hi", "max_output_tokens": 9, "model": "m", "temperature": 0.5},
     {"max_tokens": 9, "model": "m", "temperature": 0.5}),
    # Responses' own fields are consumed, not passed on as native ones
    ({"input": "hi", "store": False, "metadata": {"a": "b"}, "user": "u"}, {"store": None, "metadata": None, "user": None}),
    ({"input": "hi", "text": {"format": {"type": "json_object"}}}, {"response_format": {"type": "json_object"}}),
    ({"input": "hi", "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}}},
     {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": None}}}),
    ({"input": "hi", "reasoning": {"effort": "none"}}, {"reasoning_effort": "none"}),
    ({"input": "hi", "tools": [{"type": "function", "name": "f"}], "tool_choice": "required", "parallel_tool_calls": False},
     {"tools": [{"type": "function", "function": {"name": "f", "description": "",
                                                  "parameters": {"type": "object", "properties": {}}}}],
      "tool_choice": "required", "parallel_tool_calls": False}),
    # a function call and its output; earlier reasoning stays with the assistant turn after it
    ({"input": [
        *USER,
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "hm"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "42"},
    ]}, {"messages": [
        *USER,
        {"role": "assistant", "content": "", "reasoning_content": "hm",
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]}),
])
def test_to_chat_request(body, expected):
    req, chat = responses.to_chat_request(body)
    assert isinstance(req, responses.ResponsesRequest)
    assert {k: chat.get(k) for k in expected} == expected


def test_input_tokens_need_no_input():
    _, chat = responses.to_chat_request({}, count_only=True)
    assert chat["messages"] == [{"role": "user", "content": ""}]


@pytest.mark.parametrize("body, expected", [
    ({"input": "hi", "max_output_tokens": 9}, {"prompt": "user: hi\nassistant:", "n_predict": 9, "stream": False}),
    ({"input": "hi", "instructions": "x", "stream": True}, {"prompt": "system: x\nuser: hi\nassistant:", "stream": True}),
])
def test_responses_run_as_chat_tasks(body, expected):
    _, chat = responses.to_chat_request(body)
    plan, tasks = openai.chat_tasks(chat, chat_setup(), TOKENIZER, defaults())
    got = {"prompt": text_of(tasks[0].prompt), "n_predict": tasks[0].n_predict, "stream": plan.stream}
    assert {k: got[k] for k in expected} == expected


@pytest.mark.parametrize("body, fragment", [
    ({}, "input"),
    ({"input": "hi", "previous_response_id": "resp_1"}, '"previous_response_id" is not supported'),
    ({"input": "hi", "background": True}, '"background" responses are not supported'),
    ({"input": [{"role": "tool", "content": "x"}]}, '"role" must be user, assistant, system or developer'),
    ({"input": [{"type": "web_search_call"}]}, "unsupported input item type 'web_search_call'"),
    ({"input": [{"role": "user", "content": [{"type": "input_image"}]}]}, "input_image is not supported"),
    ({"input": [{"role": "user", "content": 5}]}, '"content" must be a string or an array of parts'),
    ({"input": "hi", "tools": [{"type": "web_search"}]}, 'only "function" tools are supported'),
    ({"input": "hi", "tools": [{"type": "function"}]}, 'tools[0]: "name" is required'),
    ({"input": "hi", "tool_choice": "sometimes"}, '"tool_choice" must be'),
    ({"input": "hi", "text": {"format": {"type": "yaml"}}}, '"text.format.type" must be'),
    ({"input": "hi", "text": {"format": {"type": "json_schema"}}}, '"text.format.schema" is required'),
])
def test_errors(body, fragment):
    with pytest.raises(InvalidRequest) as info:
        responses.to_chat_request(body)
    assert fragment in info.value.message and info.value.status == 400
