"""Ollama requests → chat or native requests and engine tasks (protocol.ollama: chat_tasks, the /api/chat route's
one call, chat_to_openai, and generate_tasks, the /api/generate route's), with a stand-in tokenizer, template and server
chat side (tests/unit/protocol_fakes.py): what each body asks of the engine, and which error wins."""

from __future__ import annotations

import json

import pytest

from llamaserve.errors import InvalidRequest, ServerError, Unavailable
from llamaserve.protocol import ollama
from tests.unit.protocol_fakes import (
    BOS, TOKENIZER, broken_template_server, chat_server, chat_setup, defaults, hermes_setup, loading_server, text_of,
)

USER = [{"role": "user", "content": "hi"}]
N_CTX = 512


@pytest.mark.parametrize("body, expected, notes", [
    ({"messages": USER}, {"messages": USER, "stream": True}, []),
    ({"messages": USER, "stream": False, "options": {"temperature": 0.1, "num_predict": 5, "seed": 3}},
     {"stream": False, "temperature": 0.1, "max_tokens": 5, "seed": 3, "n_predict": None}, []),
    # load options are fixed by the command line: accepted, with a note when they cannot take effect
    ({"messages": USER, "options": {"num_ctx": 4096, "num_gpu": 1}}, {"messages": USER}, ["num_ctx=4096"]),
    ({"messages": USER, "options": {"num_ctx": 256}}, {"messages": USER}, []),
    ({"messages": USER, "format": "json"}, {"response_format": {"type": "json_object"}}, []),
    ({"messages": USER, "format": {"type": "object"}},
     {"response_format": {"type": "json_schema", "json_schema": {"name": "format", "schema": {"type": "object"}}}}, []),
    ({"messages": USER, "think": False}, {"chat_template_kwargs": {"enable_thinking": False}}, []),
    ({"messages": USER, "think": "high"}, {"chat_template_kwargs": {"enable_thinking": True, "reasoning_effort": "high"}}, []),
    ({"messages": USER, "logprobs": True, "top_logprobs": 2}, {"logprobs": True, "top_logprobs": 2}, []),
    # Ollama's tool calls (arguments as objects) and tool results
    ({"messages": [*USER, {"role": "assistant", "content": "", "thinking": "hm",
                           "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
                   {"role": "tool", "content": "42", "tool_name": "f"}]},
     {"messages": [*USER, {"role": "assistant", "content": "", "reasoning_content": "hm", "tool_calls": [
         {"id": "call_1_0", "type": "function", "function": {"name": "f", "arguments": json.dumps({"a": 1})}}]},
         {"role": "tool", "content": "42", "name": "f"}]}, []),
])
def test_chat_to_openai(body, expected, notes):
    req, chat, got_notes = ollama.chat_to_openai(body, N_CTX)
    assert isinstance(req, ollama.ChatRequest)
    assert {k: chat.get(k) for k in expected} == expected
    assert len(got_notes) == len(notes) and all(n in g for n, g in zip(notes, got_notes))


def generate(body: dict, **task_defaults):
    req, plan, tasks = ollama.generate_tasks(body, N_CTX, TOKENIZER, defaults(**task_defaults), chat_setup)
    assert isinstance(req, ollama.GenerateRequest)
    return plan, tasks


@pytest.mark.parametrize("body, expected", [
    # templated: the prompt as the user's message (the system's before it)
    ({"prompt": "hi"}, {"prompt": "user: hi\nassistant:", "bos": True, "stream": True, "model": "alias"}),
    ({"prompt": "hi", "system": "be brief", "stream": False},
     {"prompt": "system: be brief\nuser: hi\nassistant:", "stream": False}),
    ({"prompt": "hi", "options": {"num_predict": 4}}, {"n_predict": 4}),
    # the context of an earlier answer goes first, as tokens
    ({"prompt": "hi", "context": [70, 71]}, {"head": [70, 71], "prompt": "FGuser: hi\nassistant:"}),
    # raw: no template, a native completion (special tokens only without a context)
    ({"prompt": "hi", "raw": True}, {"prompt": "hi", "bos": True, "return_tokens": True, "model": ""}),
    ({"prompt": "hi", "raw": True, "context": [70]}, {"prompt": "Fhi", "bos": False}),
    # an empty prompt without a system message runs raw too, as one space
    ({"prompt": ""}, {"prompt": " ", "bos": True}),
    ({"prompt": "", "context": [70]}, {"prompt": "F", "bos": False}),
    ({"prompt": "hi", "raw": True, "format": "json"}, {"grammar": True, "return_tokens": True}),
    ({"prompt": "hi", "raw": True, "logprobs": True, "top_logprobs": 3}, {"logprobs": 3, "n_probs": 3}),
    ({"prompt": "hi", "logprobs": True}, {"logprobs": 0, "n_probs": 1}),
])
def test_generate_tasks(body, expected):
    plan, tasks = generate(body)
    assert len(tasks) == 1
    t = tasks[0]
    got = {
        "prompt": text_of(t.prompt), "bos": t.prompt[0] == BOS, "stream": plan.stream, "model": plan.model,
        "n_predict": t.n_predict, "head": t.prompt[:2], "return_tokens": plan.native.return_tokens,
        "grammar": bool(t.params.grammar), "logprobs": plan.logprobs, "n_probs": t.params.n_probs,
    }
    assert {k: got[k] for k in expected} == expected


def test_a_raw_prompt_needs_no_chat_setup():
    def no_template():
        raise AssertionError("the chat setup was asked for")

    _, plan, tasks = ollama.generate_tasks({"prompt": "hi", "raw": True}, N_CTX, TOKENIZER, defaults(), no_template)
    assert text_of(tasks[0].prompt) == "hi"


@pytest.mark.parametrize("body, fragment", [
    ({"prompt": "hi", "images": ["x"], "raw": True}, '"images" need a templated prompt'),
    ({"prompt": "hi", "images": [1]}, '"images" must be an array of base64 strings'),
    ({"prompt": "hi", "suffix": "x"}, '"suffix" is not supported'),
    ({"prompt": "hi", "template": "x"}, '"template" is not supported'),
    ({"prompt": "hi", "options": {"fancy": 1}}, 'unknown option "fancy"'),
    ({"prompt": "hi", "format": "yaml"}, '"format" must be "json" or a JSON schema object'),
    ({"prompt": "hi", "think": "max"}, '"think" must be true, false'),
    ({"prompt": "hi", "context": [5, 1000]}, '"context" holds an invalid token id 1000'),
    ({"prompt": "hi", "raw": True, "context": [-1]}, '"context" holds an image\'s positions'),
    ({"prompt": 5}, "prompt"),
])
def test_generate_errors(body, fragment):
    with pytest.raises(InvalidRequest) as info:
        generate(body)
    assert fragment in info.value.message and info.value.status == 400


@pytest.mark.parametrize("body, fragment", [
    ({"messages": [{"role": "user", "content": "x", "images": [1]}]}, 'messages[0]: "images" must be an array'),
    ({"messages": USER, "options": {"fancy": 1}}, 'unknown option "fancy"'),
    ({"messages": "hi"}, "messages"),
])
def test_chat_errors(body, fragment):
    with pytest.raises(InvalidRequest) as info:
        ollama.chat_to_openai(body, N_CTX)
    assert fragment in info.value.message and info.value.status == 400


def test_chat_runs_as_chat_tasks():
    _, plan, tasks = ollama.chat_tasks({"messages": USER, "options": {"num_predict": 6}}, N_CTX, chat_server())
    assert (text_of(tasks[0].prompt), tasks[0].n_predict, plan.stream) == ("user: hi\nassistant:", 6, True)


def chat(body: dict, server=None, notes: list | None = None):
    return ollama.chat_tasks(body, N_CTX, server or chat_server(), (notes if notes is not None else []).extend)


@pytest.mark.parametrize("body, expected", [
    # streamed unless "stream": false; the request's model names the answer, the plan's is the server's alias
    ({"messages": USER}, {"prompt": "user: hi\nassistant:", "stream": True, "name": "", "model": "alias", "n_predict": -1}),
    ({"messages": USER, "model": "llama3", "stream": False}, {"stream": False, "name": "llama3"}),
    # options are native sampling fields; num_predict is the chat's max_tokens
    ({"messages": USER, "options": {"num_predict": 6, "temperature": 0.25, "seed": 3, "stop": ["END"]}},
     {"n_predict": 6, "temperature": 0.25, "seed": 3, "stop": ["END"]}),
    ({"messages": USER, "format": "json"}, {"grammar": True}),
    ({"messages": USER, "format": {"type": "object"}}, {"grammar": True}),
    ({"messages": USER}, {"grammar": False, "logprobs": None, "n_probs": 0}),
    ({"messages": USER, "logprobs": True, "top_logprobs": 2}, {"logprobs": 2, "n_probs": 2}),
    ({"messages": USER, "logprobs": True}, {"logprobs": 0, "n_probs": 1}),
    # the system message and an earlier tool exchange are rendered in order
    ({"messages": [{"role": "system", "content": "be brief"}, *USER,
                   {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]},
                   {"role": "tool", "content": "42", "tool_name": "f"}]},
     {"prompt": "system: be brief\nuser: hi\nassistant: \ntool: 42\nassistant:"}),
    # a final assistant message is continued (the chat path's prefill)
    ({"messages": [*USER, {"role": "assistant", "content": "Sure"}]}, {"prompt": "user: hi\nassistant: Sure"}),
])
def test_chat_tasks(body, expected):
    req, plan, tasks = chat(body)
    assert isinstance(req, ollama.ChatRequest) and len(tasks) == 1
    t = tasks[0]
    got = {
        "prompt": text_of(t.prompt), "stream": plan.stream, "name": req.model, "model": plan.model,
        "n_predict": t.n_predict, "temperature": t.params.temperature, "seed": t.params.seed, "stop": t.stop,
        "grammar": bool(t.params.grammar), "logprobs": plan.logprobs, "n_probs": t.params.n_probs,
    }
    assert t.prompt[0] == BOS
    assert {k: got[k] for k in expected} == expected


def test_chat_tasks_take_the_server_side():
    _, plan, tasks = chat({"messages": USER}, chat_server(system_prompt="sys", cache_reuse=8))
    assert plan.prompt_text == "system: sys\nuser: hi\nassistant:" and tasks[0].cache_reuse == 8


def test_chat_tools_constrain_the_calls():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    _, plan, tasks = chat({"messages": USER, "tools": tools}, chat_server(hermes_setup()))
    assert plan.tool_grammar is not None and tasks[0].params.grammar == plan.tool_grammar.gbnf
    assert tasks[0].params.grammar_lazy is True


@pytest.mark.parametrize("body, server, error, fragment, n_notes", [
    # Ollama's own checks come first: a body they refuse is a 400 even where the template cannot be used,
    # and nothing is reported for it
    ({"messages": USER, "options": {"fancy": 1, "num_ctx": 4096}}, broken_template_server, InvalidRequest,
     'unknown option "fancy"', 0),
    ({"messages": [{"role": "user", "content": "x", "images": "i"}]}, loading_server, InvalidRequest,
     'messages[0]: "images" must be an array', 0),
    ({"messages": "hi"}, loading_server, InvalidRequest, "messages", 0),
    # ... in the order the body is converted: options, format, think, then the messages
    ({"messages": USER, "options": {"fancy": 1}, "format": "yaml"}, chat_server(), InvalidRequest, 'unknown option', 0),
    ({"messages": USER, "format": "yaml", "think": "max"}, chat_server(), InvalidRequest, '"format" must be', 0),
    ({"messages": [{"role": "user", "content": "x", "images": ["i"]}], "think": "max"}, chat_server(), InvalidRequest,
     '"think" must be', 0),
    # then the server's chat side, after the options' notes are reported
    ({"messages": USER, "options": {"num_ctx": 4096}}, loading_server, Unavailable, "Loading model", 1),
    ({"messages": [{"role": "bogus", "content": "x"}]}, broken_template_server, ServerError, "cannot be used", 0),
    # then the chat path's own checks, the notes reported all the same
    ({"messages": [{"role": "bogus", "content": "x"}], "options": {"num_ctx": 4096}}, chat_server(), InvalidRequest,
     '"role" must be one of', 1),
    ({"messages": []}, chat_server(), InvalidRequest, '"messages" must be a non-empty array', 0),
    ({"messages": USER, "logprobs": True, "top_logprobs": 30}, chat_server(), InvalidRequest,
     '"top_logprobs" must be between 0 and 20', 0),
])
def test_which_chat_error_wins(body, server, error, fragment, n_notes):
    notes: list[str] = []
    with pytest.raises(ServerError) as info:
        chat(body, server, notes)
    assert type(info.value) is error and fragment in info.value.message
    assert len(notes) == n_notes


def test_chat_notes_are_reported_once():
    reports: list[list[str]] = []
    ollama.chat_tasks({"messages": USER, "options": {"num_ctx": 4096, "num_gpu": 1}}, N_CTX, chat_server(), reports.append)
    assert len(reports) == 1 and len(reports[0]) == 1 and "num_ctx=4096" in reports[0][0]
