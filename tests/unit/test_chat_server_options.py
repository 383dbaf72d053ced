"""Server-wide chat options on the request path, without a model: --reasoning-effort, --reasoning-preserve,
--skip-chat-parsing (ChatSetup → the template kwargs and the output parser), -v (the "__verbose" field of
OpenAI responses), and the template aliases llama.cpp gives the reasoning switches."""

from __future__ import annotations

import dataclasses

import pytest

from llamaserve.chat import ChatTemplate
from llamaserve.chat.formats import detect_format
from llamaserve.config import SamplingDefaults
from llamaserve.engine.types import Result, Task
from llamaserve.protocol import native, openai

THINKING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)
TOOL_CALL = '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'
TOOLS = [{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}]


def make_setup(**changes) -> tuple[openai.ChatSetup, list[dict]]:
    """A ChatSetup whose renderer records the template kwargs of each request."""
    seen: list[dict] = []

    def render(messages, add_generation_prompt, tools, kwargs, continue_final):
        seen.append(dict(kwargs))
        return "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"

    fields = dict(render=render, format=detect_format("<tool_call>" + THINKING_TEMPLATE), caps=None,
                  prefill_assistant=True, template_kwargs={}, reasoning_format="auto", max_n=4, model_alias="m")
    return openai.ChatSetup(**{**fields, **changes}), seen


def chat(body: dict, **setup_changes) -> tuple[openai.Plan, dict]:
    setup, seen = make_setup(**setup_changes)
    plan = openai.plan_chat({"messages": [{"role": "user", "content": "hi"}], **body}, setup)
    return plan, seen[-1]


@pytest.mark.parametrize("server, body, expected", [
    ({}, {}, {"enable_thinking": True}),
    ({"reasoning_effort": "high"}, {}, {"enable_thinking": True, "reasoning_effort": "high"}),
    ({"reasoning_effort": "default"}, {}, {"enable_thinking": True}),  # the template's own default
    ({"reasoning_preserve": True}, {}, {"enable_thinking": True, "preserve_reasoning": True}),
    ({"reasoning_preserve": False}, {}, {"enable_thinking": True, "preserve_reasoning": False}),
    ({"template_kwargs": {"enable_thinking": False}}, {}, {"enable_thinking": False}),  # --reasoning off
    # the request wins: its effort, its kwargs, and "none" (thinking off, the server's effort dropped)
    ({"reasoning_effort": "high"}, {"reasoning_effort": "low"}, {"enable_thinking": True, "reasoning_effort": "low"}),
    ({"reasoning_effort": "high"}, {"reasoning_effort": "none"}, {"enable_thinking": False}),
    ({"reasoning_preserve": True}, {"chat_template_kwargs": {"preserve_reasoning": False}},
     {"enable_thinking": True, "preserve_reasoning": False}),
])
def test_template_kwargs_of_the_reasoning_options(server, body, expected):
    assert chat(body, **server)[1] == expected


def test_reasoning_aliases_as_llama_cpp_sets_them():
    t = ChatTemplate("{{ preserve_thinking }}|{{ clear_thinking }}|{{ truncate_history_thinking }}|"
                     "{{ drop_thinking }}|{{ reasoning_strength }}")
    msgs = [{"role": "user", "content": "x"}]
    assert t.render(msgs, preserve_reasoning=False, reasoning_effort="low") == "False|True|True|True|low"
    assert t.render(msgs, preserve_reasoning=True) == "True|False|False|False|"
    # a kwarg given under the alias's own name wins; nothing is set without the switches
    assert t.render(msgs, preserve_reasoning=True, clear_thinking=True).split("|")[1] == "True"
    assert t.render(msgs) == "||||"


def test_reasoning_preserve_keeps_the_history_reasoning_of_a_template_that_reads_it():
    source = ("{% for m in messages %}{% if m.reasoning_content and not clear_thinking %}[{{ m.reasoning_content }}]"
              "{% endif %}{{ m['content'] }};{% endfor %}")
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "reasoning_content": "r"},
            {"role": "user", "content": "q2"}]
    t = ChatTemplate(source)
    assert "[r]" in t.render(msgs, preserve_reasoning=True)
    assert "[r]" not in t.render(msgs, preserve_reasoning=False)


def test_skip_chat_parsing_leaves_reasoning_and_tool_calls_in_content():
    text = "<think>pondering</think>" + TOOL_CALL
    parsed = openai.parse_message(chat({"tools": TOOLS})[0], text)
    assert parsed["reasoning_content"] == "pondering" and parsed["tool_calls"]
    plan, _ = chat({"tools": TOOLS}, skip_chat_parsing=True)
    assert plan.tool_grammar is None and plan.budget is None
    assert openai.parse_message(plan, text) == {"content": text, "reasoning_content": "", "tool_calls": []}


def test_skip_chat_parsing_drops_the_reasoning_budget():
    assert chat({}, reasoning_budget=5)[0].budget is not None
    assert chat({}, reasoning_budget=5, skip_chat_parsing=True)[0].budget is None


# --- __verbose ---

def final(plan: openai.Plan, text: str = "Hello", stream: bool = False) -> Result:
    task = native.build_tasks(plan.native, [[1, 2, 3]], SamplingDefaults(), lambda s, a: [], 100)[0]
    task.stream = stream
    return Result(task, text=text, tokens=[5], done=True, stop_type="eos", n_prompt=3, n_decoded=1)


@pytest.mark.parametrize("server, body, expected", [
    (False, {}, False), (True, {}, True), (True, {"verbose": False}, False), (False, {"verbose": True}, True),
])
def test_verbose_is_the_servers_unless_the_request_says(server, body, expected):
    assert chat(body, verbose=server)[0].verbose is expected
    assert openai.plan_completions({"prompt": "x", **body}, max_n=4, model_alias="m", verbose=server).verbose is expected


def test_chat_response_carries_the_native_response():
    env = openai.Envelope("id", "m", "fp")
    plan, _ = chat({"verbose": True})
    r = final(plan)
    out = openai.chat_response(env, [r], plan)
    assert out["__verbose"] == native.final_json(r, "m", plan.prompt_text, False, None)
    assert out["__verbose"]["content"] == "Hello" and out["__verbose"]["prompt"] == plan.prompt_text
    assert "__verbose" not in openai.chat_response(env, [r], chat({})[0])


def test_streamed_chat_only_the_first_chunk_of_the_final_result_carries_it():
    plan, _ = chat({"verbose": True, "stream": True})
    chunks = openai.ChatChunks(openai.Envelope("id", "m", "fp"), plan)
    partial = dataclasses.replace(final(plan, stream=True), done=False)
    first = chunks.chunks(partial)
    last = chunks.chunks(final(plan, text=" there", stream=True))
    assert not any("__verbose" in c for c in first)
    assert "__verbose" in last[0] and not any("__verbose" in c for c in last[1:])
    assert last[0]["__verbose"]["content"] == ""  # the text went out in the chunks


def test_completions_every_chunk_and_the_response_carry_it():
    plan = openai.plan_completions({"prompt": "x", "stream": True}, max_n=4, model_alias="m", verbose=True)
    chunks = openai.CompletionChunks(openai.Envelope("id", "m", "fp"), plan, ["the prompt"])
    r = final(plan, stream=True)
    partial = dataclasses.replace(r, done=False)
    assert chunks.text(partial)["__verbose"] == native.partial_json(partial, True)
    end = chunks.text(r, "stop")["__verbose"]
    assert end["stop"] is True and end["content"] == "" and end["prompt"] == "the prompt"
    plan = dataclasses.replace(plan, stream=False)
    r = final(plan)
    assert openai.completions_response(openai.Envelope("id", "m", "fp"), [r], plan, ["p"])["__verbose"]["content"] == "Hello"


@pytest.mark.parametrize("effort, expected", [
    ("none", {"enable_thinking": False}), ("low", {"enable_thinking": True, "reasoning_effort": "low"}),
])
def test_responses_reasoning_effort_is_openais_field(effort, expected):
    from llamaserve.protocol import responses

    _, body = responses.to_chat_request({"input": "hi", "reasoning": {"effort": effort}})
    setup, seen = make_setup(reasoning_effort="high")
    openai.plan_chat(body, setup)
    assert seen[-1] == expected


# --- continuing the final assistant message (prefill, continue_final_message) ---

def rendered(body: dict, **setup_changes) -> list[tuple]:
    """What plan_chat asked the renderer for: (messages, add_generation_prompt, continue_final)."""
    calls: list[tuple] = []

    def render(messages, add_generation_prompt, tools, kwargs, continue_final):
        calls.append((messages, add_generation_prompt, continue_final))
        return "<|im_start|>assistant\n"

    setup, _ = make_setup(render=render, **setup_changes)
    openai.plan_chat(body, setup)
    return calls


ASKED = [{"role": "user", "content": "What is the best book"}]


@pytest.mark.parametrize("prefill_assistant, body", [
    (True, {}),  # llama-server's heuristic: a final assistant message is continued
    (False, {"continue_final_message": True, "add_generation_prompt": False}),
    (False, {"continue_final_message": "content", "add_generation_prompt": False}),
])
def test_final_assistant_message_is_continued_with_its_parts_joined_by_a_blank_line(prefill_assistant, body):
    parts = [{"type": "text", "text": "Wh"}, {"type": "text", "text": "ill"}]
    [(messages, add_generation_prompt, continue_final)] = rendered(
        {"messages": ASKED + [{"role": "assistant", "content": parts}], **body}, prefill_assistant=prefill_assistant)
    assert (add_generation_prompt, continue_final) == (False, True)
    assert messages[-1]["content"] == "Wh\n\nill"


def test_without_prefill_the_final_assistant_message_is_rendered_as_history():
    [(messages, add_generation_prompt, continue_final)] = rendered(
        {"messages": ASKED + [{"role": "assistant", "content": "Whill"}]}, prefill_assistant=False)
    assert (add_generation_prompt, continue_final) == (True, False)


@pytest.mark.parametrize("body, needle", [
    ({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
      "continue_final_message": True}, "Cannot set both add_generation_prompt and continue_final_message"),
    ({"messages": ASKED, "continue_final_message": True, "add_generation_prompt": False}, "last message"),
    ({"messages": ASKED + [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]},
     "2 or more assistant messages"),
    ({"messages": ASKED + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]}]},
     "contains tool calls"),
])
def test_continuation_that_cannot_be_rendered_is_a_bad_request(body, needle):
    from llamaserve.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match=needle):
        rendered(body)
