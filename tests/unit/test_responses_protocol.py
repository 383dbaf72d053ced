"""OpenAI Responses requests → the chat request they run as (protocol.responses.to_chat_request), and on to
engine tasks in the routes' one call (protocol.responses.chat_tasks), with a stand-in tokenizer, template and
server chat side (tests/unit/protocol_fakes.py): what each body asks of the engine, and which error wins."""

from __future__ import annotations

import pytest

from llamaserve.errors import InvalidRequest, ServerError, Unavailable
from llamaserve.protocol import responses
from tests.unit.protocol_fakes import BOS, broken_template_server, chat_server, hermes_setup, loading_server, text_of

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


@pytest.mark.parametrize("body, count_only, expected", [
    ({"input": "hi", "max_output_tokens": 9}, False,
     {"prompt": "user: hi\nassistant:", "n_predict": 9, "stream": False, "model": "alias"}),
    ({"input": "hi", "instructions": "x", "stream": True}, False, {"prompt": "system: x\nuser: hi\nassistant:", "stream": True}),
    ({"input": "hi", "model": "m"}, False, {"model": "m"}),
    ({"input": [{"role": "developer", "content": "be brief"}, *USER]}, False,
     {"prompt": "system: be brief\nuser: hi\nassistant:"}),
    # a final assistant message is continued (the chat path's prefill)
    ({"input": [*USER, {"role": "assistant", "content": [{"type": "output_text", "text": "Sure"}]}]}, False,
     {"prompt": "user: hi\nassistant: Sure"}),
    # sampling fields reach the tasks; text.format becomes a grammar
    ({"input": "hi", "temperature": 0.5, "top_p": 0.5}, False, {"temperature": 0.5, "top_p": 0.5, "grammar": False}),
    ({"input": "hi", "text": {"format": {"type": "json_object"}}}, False, {"grammar": True}),
    ({"input": "hi", "max_output_tokens": 9}, True, {"n_predict": 9}),
    # input_tokens: no input needed (an empty user turn); the server's -n
    ({}, True, {"prompt": "user: \nassistant:", "n_predict": -1}),
])
def test_chat_tasks(body, count_only, expected):
    req, plan, tasks = responses.chat_tasks(body, chat_server(), count_only)
    assert isinstance(req, responses.InputTokensRequest if count_only else responses.ResponsesRequest)
    assert len(tasks) == 1
    t = tasks[0]
    got = {"prompt": text_of(t.prompt), "n_predict": t.n_predict, "stream": plan.stream, "model": plan.model,
           "temperature": t.params.temperature, "top_p": t.params.top_p, "grammar": bool(t.params.grammar)}
    assert t.prompt[0] == BOS
    assert {k: got[k] for k in expected} == expected


def test_chat_tasks_give_the_request_the_response_echoes():
    req, _, _ = responses.chat_tasks({"input": "hi", "instructions": "x", "metadata": {"a": "b"}}, chat_server())
    assert (req.instructions, req.metadata) == ("x", {"a": "b"})


def test_chat_tasks_take_the_server_side():
    # the default system message (POST /props) where the request has none, --cache-reuse on the tasks
    _, plan, tasks = responses.chat_tasks({"input": "hi"}, chat_server(system_prompt="sys", cache_reuse=8))
    assert plan.prompt_text == "system: sys\nuser: hi\nassistant:" and tasks[0].cache_reuse == 8
    _, plan, _ = responses.chat_tasks({"input": "hi", "instructions": "mine"}, chat_server(system_prompt="sys"))
    assert plan.prompt_text.startswith("system: mine\n")


@pytest.mark.parametrize("tool_choice, lazy", [(None, True), ("auto", True), ("required", False),
                                               ({"type": "function", "name": "f"}, False)])
def test_tools_constrain_the_calls(tool_choice, lazy):
    body = {"input": "hi", "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}]}
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    _, plan, tasks = responses.chat_tasks(body, chat_server(hermes_setup()))
    assert plan.tool_grammar is not None and tasks[0].params.grammar == plan.tool_grammar.gbnf
    assert tasks[0].params.grammar_lazy is lazy


@pytest.mark.parametrize("body, count_only, server, error, fragment", [
    # the Responses checks come first: a body they refuse is a 400 even while the model loads
    ({}, False, loading_server, InvalidRequest, "input"),
    ({"input": "hi", "previous_response_id": "resp_1"}, False, loading_server, InvalidRequest,
     '"previous_response_id" is not supported'),
    ({"input": [{"role": "user", "content": [{"type": "input_image"}]}]}, False, broken_template_server, InvalidRequest,
     'an input_image needs an "image_url"'),
    # ... in the order the body is converted: previous_response_id, background, input, tools, tool_choice, text
    ({"input": "hi", "previous_response_id": "resp_1", "background": True}, False, chat_server(), InvalidRequest,
     '"previous_response_id" is not supported'),
    ({"input": [{"type": "web_search_call"}], "background": True}, False, chat_server(), InvalidRequest,
     '"background" responses are not supported'),
    ({"input": [{"type": "web_search_call"}], "tools": [{"type": "web_search"}]}, False, chat_server(), InvalidRequest,
     "unsupported input item type 'web_search_call'"),
    ({"input": "hi", "tools": [{"type": "function"}], "tool_choice": "sometimes"}, False, chat_server(), InvalidRequest,
     'tools[0]: "name" is required'),
    ({"input": "hi", "tool_choice": "sometimes", "text": {"format": {"type": "yaml"}}}, False, chat_server(),
     InvalidRequest, '"tool_choice" must be'),
    # then the server's chat side: 503 while loading, the template's error where it cannot be used, both
    # before the chat path looks at the body
    ({"input": "hi"}, False, loading_server, Unavailable, "Loading model"),
    ({"input": "hi", "tool_choice": "required"}, False, loading_server, Unavailable, "Loading model"),
    ({}, True, broken_template_server, ServerError, "cannot be used"),
    # then the chat path's own checks
    ({"input": "hi", "tool_choice": "required"}, False, chat_server(), InvalidRequest, '"tool_choice": "required" needs "tools"'),
    ({"input": "hi", "n": 9}, False, chat_server(), InvalidRequest, '"n" must be between 1 and 4'),
    ({"input": []}, False, chat_server(), InvalidRequest, '"messages" must be a non-empty array'),
    ({"input": "hi", "text": {"format": {"type": "json_object"}}, "grammar": "root ::= x"}, False, chat_server(),
     InvalidRequest, '"response_format" cannot be combined with "grammar"'),
])
def test_which_error_wins(body, count_only, server, error, fragment):
    with pytest.raises(ServerError) as info:
        responses.chat_tasks(body, server, count_only)
    assert type(info.value) is error and fragment in info.value.message


@pytest.mark.parametrize("body, fragment", [
    ({}, "input"),
    ({"input": "hi", "previous_response_id": "resp_1"}, '"previous_response_id" is not supported'),
    ({"input": "hi", "background": True}, '"background" responses are not supported'),
    ({"input": [{"role": "tool", "content": "x"}]}, '"role" must be user, assistant, system or developer'),
    ({"input": [{"type": "web_search_call"}]}, "unsupported input item type 'web_search_call'"),
    ({"input": [{"role": "user", "content": [{"type": "input_image"}]}]}, 'an input_image needs an "image_url"'),
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
