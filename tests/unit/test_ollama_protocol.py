"""Ollama requests → chat or native requests and engine tasks (protocol.ollama: chat_to_openai,
generate_to_openai, generate_tasks), with a stand-in tokenizer and template (tests/unit/protocol_fakes.py)."""

from __future__ import annotations

import json

import pytest

from llamaserve.errors import InvalidRequest
from llamaserve.protocol import ollama, openai
from tests.unit.protocol_fakes import BOS, TOKENIZER, chat_setup, defaults, text_of

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
    req, fields, _ = ollama.generate_to_openai(body, N_CTX)
    return ollama.generate_tasks(req, fields, TOKENIZER, defaults(**task_defaults), chat_setup)


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

    req, fields, _ = ollama.generate_to_openai({"prompt": "hi", "raw": True}, N_CTX)
    plan, tasks = ollama.generate_tasks(req, fields, TOKENIZER, defaults(), no_template)
    assert text_of(tasks[0].prompt) == "hi"


@pytest.mark.parametrize("body, fragment", [
    ({"prompt": "hi", "images": ["x"]}, "images are not supported"),
    ({"prompt": "hi", "suffix": "x"}, '"suffix" is not supported'),
    ({"prompt": "hi", "template": "x"}, '"template" is not supported'),
    ({"prompt": "hi", "options": {"fancy": 1}}, 'unknown option "fancy"'),
    ({"prompt": "hi", "format": "yaml"}, '"format" must be "json" or a JSON schema object'),
    ({"prompt": "hi", "think": "max"}, '"think" must be true, false'),
    ({"prompt": "hi", "context": [5, 1000]}, '"context" holds an invalid token id 1000'),
    ({"prompt": "hi", "raw": True, "context": [-1]}, '"context" holds an invalid token id -1'),
    ({"prompt": 5}, "prompt"),
])
def test_generate_errors(body, fragment):
    with pytest.raises(InvalidRequest) as info:
        generate(body)
    assert fragment in info.value.message and info.value.status == 400


@pytest.mark.parametrize("body, fragment", [
    ({"messages": [{"role": "user", "content": "x", "images": ["i"]}]}, "messages[0]: images are not supported"),
    ({"messages": USER, "options": {"fancy": 1}}, 'unknown option "fancy"'),
    ({"messages": "hi"}, "messages"),
])
def test_chat_errors(body, fragment):
    with pytest.raises(InvalidRequest) as info:
        ollama.chat_to_openai(body, N_CTX)
    assert fragment in info.value.message and info.value.status == 400


def test_chat_runs_as_chat_tasks():
    _, chat, _ = ollama.chat_to_openai({"messages": USER, "options": {"num_predict": 6}}, N_CTX)
    plan, tasks = openai.chat_tasks(chat, chat_setup(), TOKENIZER, defaults())
    assert (text_of(tasks[0].prompt), tasks[0].n_predict, plan.stream) == ("user: hi\nassistant:", 6, True)
