"""OpenAI requests → plan and engine tasks (protocol.openai.chat_tasks / completions_tasks), with a stand-in
tokenizer and template (tests/unit/protocol_fakes.py): what each body asks of the engine, and the errors."""

from __future__ import annotations

import pytest

from llamaserve.errors import InvalidRequest, MediaUnsupported
from llamaserve.protocol import openai
from tests.unit.protocol_fakes import BOS, TOKENIZER, chat_setup, defaults, hermes_setup, text_of

USER = [{"role": "user", "content": "hi"}]


def chat(body: dict, setup=None, **task_defaults):
    return openai.chat_tasks(body, setup or chat_setup(), TOKENIZER, defaults(**task_defaults))


@pytest.mark.parametrize("body, expected", [
    # the prompt is the rendered template, tokenized with special tokens (BOS first)
    ({"messages": USER}, {"prompt": "user: hi\nassistant:", "n_tasks": 1, "model": "alias", "stream": False}),
    ({"messages": USER, "model": "gpt-x"}, {"model": "gpt-x"}),
    # content parts join with a newline; developer is a system message
    ({"messages": [{"role": "developer", "content": "be brief"},
                   {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]},
     {"prompt": "system: be brief\nuser: a\nb\nassistant:"}),
    # a final assistant message is continued (prefill): no generation prompt
    ({"messages": [*USER, {"role": "assistant", "content": "Sure"}]}, {"prompt": "user: hi\nassistant: Sure"}),
    ({"messages": USER, "add_generation_prompt": False}, {"prompt": "user: hi\n"}),
    # the limits: max_completion_tokens before max_tokens, a native n_predict before both
    ({"messages": USER, "max_tokens": 7}, {"n_predict": 7}),
    ({"messages": USER, "max_tokens": 7, "max_completion_tokens": 5}, {"n_predict": 5}),
    ({"messages": USER, "max_tokens": 7, "n_predict": 3}, {"n_predict": 3}),
    ({"messages": USER}, {"n_predict": -1}),
    # n choices: one task each, one prompt group
    ({"messages": USER, "n": 3}, {"n_tasks": 3, "indexes": [0, 1, 2], "one_group": True}),
    # logprobs: at least one alternative is computed
    ({"messages": USER, "logprobs": True}, {"logprobs": 0, "n_probs": 1}),
    ({"messages": USER, "logprobs": True, "top_logprobs": 4}, {"logprobs": 4, "n_probs": 4}),
    ({"messages": USER}, {"logprobs": None, "n_probs": 0}),
    # sampling fields pass through as native ones
    ({"messages": USER, "temperature": 0.25, "seed": 9, "stop": "x"}, {"temperature": 0.25, "seed": 9, "stop": ["x"]}),
    ({"messages": USER, "stream": True, "stream_options": {"include_usage": True}}, {"stream": True, "include_usage": True}),
    # response_format becomes a grammar; tools (with a format that has calls) a lazy one
    ({"messages": USER, "response_format": {"type": "json_object"}}, {"grammar": True, "lazy": False}),
    ({"messages": USER, "response_format": {"type": "text"}}, {"grammar": False}),
])
def test_chat_tasks(body, expected):
    plan, tasks = chat(body)
    t = tasks[0]
    got = {
        "prompt": text_of(t.prompt), "n_tasks": len(tasks), "model": plan.model, "stream": plan.stream,
        "n_predict": t.n_predict, "indexes": [x.index for x in tasks],
        "one_group": len({id(x.prompt_group) for x in tasks}) == 1, "logprobs": plan.logprobs,
        "n_probs": t.params.n_probs, "temperature": t.params.temperature, "seed": t.params.seed, "stop": t.stop,
        "include_usage": plan.include_usage, "grammar": bool(t.params.grammar), "lazy": t.params.grammar_lazy,
    }
    assert t.prompt[0] == BOS
    assert {k: got[k] for k in expected} == expected


@pytest.mark.parametrize("body, lazy, triggers", [
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, True, ["<tool_call>"]),
    ({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required"}, False, []),
])
def test_chat_tools_constrain_the_calls(body, lazy, triggers):
    plan, tasks = chat({"messages": USER, **body}, hermes_setup())
    params = tasks[0].params
    assert plan.tool_grammar is not None and params.grammar == plan.tool_grammar.gbnf
    assert (params.grammar_lazy, params.grammar_triggers) == (lazy, triggers)


def test_chat_tasks_take_the_server_side():
    # the default system message (POST /props) where the request has none; the special pieces on every task
    plan, tasks = chat({"messages": USER, "n": 2}, chat_setup(special_pieces={5: b"<x>"}), system_prompt="sys")
    assert plan.prompt_text == "system: sys\nuser: hi\nassistant:"
    assert [t.special_pieces for t in tasks] == [{5: b"<x>"}] * 2
    plan, _ = chat({"messages": [{"role": "system", "content": "mine"}, *USER]}, system_prompt="sys")
    assert plan.prompt_text.startswith("system: mine\n")
    _, tasks = chat({"messages": USER}, cache_reuse=16)
    assert tasks[0].cache_reuse == 16


def test_an_empty_chat_only_where_allowed():
    with pytest.raises(InvalidRequest, match='"messages" must be a non-empty array'):
        chat({"messages": []})
    plan, _ = openai.chat_tasks({"messages": []}, chat_setup(), TOKENIZER, defaults(), allow_empty=True)
    assert plan.prompt_text == "assistant:"


@pytest.mark.parametrize("body, error, fragment", [
    ([], InvalidRequest, "must be a JSON object"),
    ({}, InvalidRequest, "messages"),
    ({"messages": USER, "n": 5}, InvalidRequest, '"n" must be between 1 and 4'),
    ({"messages": USER, "n": 0}, InvalidRequest, '"n" must be between 1 and 4'),
    ({"messages": USER, "stream_options": {"include_usage": True}}, InvalidRequest, "only allowed when \"stream\" is true"),
    ({"messages": USER, "top_logprobs": 2}, InvalidRequest, '"top_logprobs" requires "logprobs"'),
    ({"messages": USER, "logprobs": True, "top_logprobs": 21}, InvalidRequest, "between 0 and 20"),
    ({"messages": [{"role": "robot", "content": "x"}]}, InvalidRequest, '"role" must be one of'),
    ({"messages": [{"role": "user"}]}, InvalidRequest, '"content" is required'),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}, MediaUnsupported, "messages[0]"),
    ({"messages": USER, "response_format": {"type": "xml"}}, InvalidRequest, '"response_format.type" must be'),
    ({"messages": USER, "response_format": {"type": "json_object"}, "grammar": "root ::= \"a\""}, InvalidRequest,
     "cannot be combined"),
    ({"messages": USER, "reasoning_format": "loud"}, InvalidRequest, '"reasoning_format" must be one of'),
    ({"messages": USER, "tool_choice": "required"}, InvalidRequest, 'needs "tools"'),
    ({"messages": USER, "tools": [{"type": "function", "function": {"name": "f"}}],
      "tool_choice": {"type": "function", "function": {"name": "g"}}}, InvalidRequest, "not in \"tools\""),
    ({"messages": USER, "tools": [{"type": "retrieval"}]}, InvalidRequest, "tools[0] must be"),
    ({"messages": [*USER, {"role": "assistant", "content": "a"}], "continue_final_message": True}, InvalidRequest,
     "Cannot set both add_generation_prompt and continue_final_message"),
    ({"messages": [*USER, {"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]}, InvalidRequest,
     "2 or more assistant messages"),
    ({"messages": USER, "n_probs": -1}, InvalidRequest, "'n_probs': Input should be greater than or equal to 0"),
])
def test_chat_errors(body, error, fragment):
    with pytest.raises(error) as info:
        chat(body)
    assert fragment in info.value.message
    assert info.value.status == (500 if error is MediaUnsupported else 400)  # llama-server's 500 for media


def completions(body: dict, **task_defaults):
    return openai.completions_tasks(body, TOKENIZER, defaults(**task_defaults), max_n=4, model_alias="alias")


@pytest.mark.parametrize("body, expected", [
    ({"prompt": "ab"}, {"prompts": ["ab"], "texts": [], "model": "alias", "n_tasks": 1}),
    # several prompts × n choices: choice i of prompt p at index p * n + i
    ({"prompt": ["a", "b"], "n": 2}, {"prompts": ["a", "a", "b", "b"], "indexes": [0, 1, 2, 3]}),
    ({"prompt": [5, 6]}, {"prompts": ["\x05\x06"]}),
    # echo needs the prompts' text back
    ({"prompt": "ab", "echo": True}, {"texts": ["ab"], "echo": True}),
    ({"prompt": "ab", "logprobs": 3}, {"logprobs": 3, "n_probs": 3}),
    ({"prompt": "ab", "logprobs": 0}, {"logprobs": 0, "n_probs": 1}),
    ({"prompt": "ab", "max_tokens": 4, "model": "m2"}, {"n_predict": 4, "model": "m2"}),
    ({"prompt": "ab", "best_of": 1}, {"n_tasks": 1}),
])
def test_completions_tasks(body, expected):
    plan, tasks, texts = completions(body)
    got = {
        "prompts": [text_of(t.prompt) for t in tasks], "texts": [t.replace(chr(BOS), "") for t in texts],
        "model": plan.model, "n_tasks": len(tasks), "indexes": [t.index for t in tasks], "echo": plan.echo,
        "logprobs": plan.logprobs, "n_probs": tasks[0].params.n_probs, "n_predict": tasks[0].n_predict,
    }
    assert {k: got[k] for k in expected} == expected


@pytest.mark.parametrize("body, fragment", [
    ({}, '"prompt" is required'),
    ({"prompt": "a", "best_of": 2}, '"best_of" is not supported'),
    ({"prompt": "a", "suffix": "b"}, '"suffix" is not supported'),
    ({"prompt": "a", "logprobs": 6}, '"logprobs" must be between 0 and 5'),
    ({"prompt": "a", "echo": True, "logprobs": 1}, '"echo" together with "logprobs"'),
    ({"prompt": "a", "n": 9}, '"n" must be between 1 and 4'),
    ({"prompt": [5, 1000]}, "invalid token id 1000"),
    ({"prompt": "a", "stream": "yes"}, "stream"),
])
def test_completions_errors(body, fragment):
    with pytest.raises(InvalidRequest) as info:
        completions(body)
    assert fragment in info.value.message and info.value.status == 400
