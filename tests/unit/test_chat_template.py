"""Chat-template rendering: every vendor template in shared/chat-templates renders, caps are probed
right, and the prompt is the very string transformers' apply_chat_template builds."""

from __future__ import annotations

import copy
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import lru_cache

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download: the tokenizer below is built in memory
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import transformers.utils.chat_template_utils as hf_chat_utils  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from tokenizers.models import WordLevel  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

import llamaserve.chat.template as template_module  # noqa: E402
from llamaserve.chat import ChatTemplate, TemplateCaps, TemplateError  # noqa: E402
from tests.helpers import templates_dir  # noqa: E402

BOS, EOS = "<s>", "</s>"


TEMPLATES_DIR = templates_dir()
TEMPLATE_NAMES = sorted(p.name for p in TEMPLATES_DIR.glob("*.jinja"))


@lru_cache(maxsize=None)
def load(name: str) -> ChatTemplate:
    return ChatTemplate((TEMPLATES_DIR / name).read_text(encoding="utf-8"), bos_token=BOS, eos_token=EOS)


class _FixedDatetime(datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2025, 3, 7, 14, 30, 5, tzinfo=tz)


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch):
    # strftime_now must give both renderers the same date
    monkeypatch.setattr(template_module, "datetime", _FixedDatetime)
    monkeypatch.setattr(hf_chat_utils, "datetime", _FixedDatetime)


@pytest.fixture(scope="module")
def hf_tokenizer():
    vocab = {"<unk>": 0, BOS: 1, EOS: 2}
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="<unk>")), bos_token=BOS, eos_token=EOS
    )


SYSTEM = "You are a helpful assistant."
BASIC = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "Hi there!"},
    {"role": "assistant", "content": "Hello! How can I help you today?"},
    {"role": "user", "content": "What is the capital of France?"},
]
TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Unit"},
            },
            "required": ["city"],
        },
    },
}]


def tool_call(call_id: str, city: str) -> dict:
    # Mistral templates insist on 9 alphanumeric characters
    return {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": {"city": city}}}


TOOL_CALL_CONVERSATION = [
    {"role": "user", "content": "What's the weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [tool_call("call00001", "Paris")]},
    {"role": "tool", "tool_call_id": "call00001", "name": "get_weather", "content": '{"temperature": 22}'},
]
PARALLEL_CALL_CONVERSATION = [
    {"role": "user", "content": "Weather in Paris and Tokyo?"},
    {"role": "assistant", "content": "", "tool_calls": [tool_call("call00001", "Paris"), tool_call("call00002", "Tokyo")]},
    {"role": "tool", "tool_call_id": "call00001", "name": "get_weather", "content": '{"temperature": 22}'},
    {"role": "tool", "tool_call_id": "call00002", "name": "get_weather", "content": '{"temperature": 18}'},
]
REASONING_HISTORY = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4", "reasoning_content": "Two plus two makes four."},
    {"role": "user", "content": "And 3+3?"},
]
DOCUMENTS = [{"title": "Paris", "text": "Paris is the capital of France."}]


def cases(tmpl: ChatTemplate) -> dict[str, dict]:
    """Render inputs (kwargs of ChatTemplate.render) for one template, as far as its caps go."""
    out = {
        "basic": dict(messages=BASIC),
        "basic-no-generation-prompt": dict(messages=BASIC, add_generation_prompt=False),
        "user-only": dict(messages=[{"role": "user", "content": "Hello"}]),
        "typed-content": dict(messages=[{"role": "user", "content": [
            {"type": "text", "text": "Describe"}, {"type": "text", "text": "Paris."}]}]),
        "thinking-on": dict(messages=REASONING_HISTORY, enable_thinking=True),
        "thinking-off": dict(messages=BASIC, enable_thinking=False),
        "null-fields": dict(messages=[{"role": "user", "content": "Hi", "name": None, "tool_calls": None}]),
    }
    if tmpl.caps.supports_tools:
        out["documents"] = dict(messages=BASIC, documents=DOCUMENTS, tools=TOOLS)
        out["tools"] = dict(messages=BASIC, tools=TOOLS)
    if tmpl.caps.supports_tool_calls:
        out["tool-call"] = dict(messages=TOOL_CALL_CONVERSATION, tools=TOOLS)
    if tmpl.caps.supports_parallel_tool_calls:
        out["parallel-tool-calls"] = dict(messages=PARALLEL_CALL_CONVERSATION, tools=TOOLS)
    return out


def render_case(tmpl: ChatTemplate, case: dict) -> str:
    case = dict(case)
    return tmpl.render(case.pop("messages"), **case)


def hf_render(hf_tokenizer, tmpl: ChatTemplate, case: dict) -> str:
    """transformers' apply_chat_template on the same inputs (messages as our renderer adapted them)."""
    case = dict(case)
    add_generation_prompt = case.pop("add_generation_prompt", True)
    messages = case.pop("messages")
    inputs = tmpl.template_inputs(messages, **case)
    return hf_tokenizer.apply_chat_template(
        inputs.pop("messages"), tools=inputs.pop("tools"), documents=inputs.pop("documents"),
        chat_template=tmpl.source, add_generation_prompt=add_generation_prompt, tokenize=False, **inputs,
    )


# --- every template in the directory ---

def test_templates_directory_is_populated():
    assert len(TEMPLATE_NAMES) >= 50


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_basic_conversation_renders(name):
    tmpl = load(name)
    text = tmpl.render(BASIC)
    for message in BASIC:
        assert message["content"] in text, f"{message['role']} message missing"
    assert text.endswith(tmpl.generation_prompt(BASIC))
    assert text.index("Hi there!") < text.index("What is the capital of France?")
    if not tmpl.caps.supports_system_role:  # merged into the first user turn, as llama.cpp does
        assert SYSTEM + "\nHi there!" in text


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_tools_render_where_supported(name):
    tmpl = load(name)
    try:
        text = tmpl.render(BASIC, tools=TOOLS)
    except TemplateError:
        assert not tmpl.caps.supports_tools
        return
    assert ("get_weather" in text) == tmpl.caps.supports_tools
    if tmpl.caps.supports_tools:
        assert "Get the current weather in a city" in text


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_tool_calls_render_where_supported(name):
    tmpl = load(name)
    if not tmpl.caps.supports_tool_calls:
        try:
            text = tmpl.render(TOOL_CALL_CONVERSATION)
        except TemplateError:
            return
        assert '"city"' not in text and "city>" not in text, "caps missed the template's tool calls"
        return
    text = tmpl.render(TOOL_CALL_CONVERSATION, tools=TOOLS)
    assert text.count("Paris") >= 2, "tool-call arguments missing"  # once in the user message
    assert "{'city': 'Paris'}" not in text, "arguments printed as a Python dict"
    assert "22" in text, "tool result missing"
    if tmpl.caps.supports_parallel_tool_calls:
        text = tmpl.render(PARALLEL_CALL_CONVERSATION, tools=TOOLS)
        assert text.count("Tokyo") >= 2 and "18" in text


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_rendering_equals_transformers(name, hf_tokenizer):
    tmpl = load(name)
    mismatches = []
    for case_name, case in cases(tmpl).items():
        ours = render_case(tmpl, case)
        theirs = hf_render(hf_tokenizer, tmpl, case)
        if ours != theirs:
            mismatches.append(f"{case_name}:\n--- ours\n{ours!r}\n--- transformers\n{theirs!r}")
    assert not mismatches, "\n".join(mismatches)


def test_plain_conversation_reaches_template_unchanged():
    # the comparison above feeds transformers our adapted messages: for a template that needs no
    # adaptation they are the caller's messages themselves
    tmpl = load("Qwen-Qwen2.5-7B-Instruct.jinja")
    assert tmpl.prepare_messages(BASIC) == BASIC


def test_render_does_not_touch_the_callers_messages():
    tmpl = load("google-gemma-2-2b-it.jinja")
    messages = copy.deepcopy(BASIC) + [{"role": "assistant", "content": None, "tool_calls": [tool_call("c", "Rome")]}]
    before = copy.deepcopy(messages)
    tmpl.render(messages)
    load("Qwen-Qwen3-0.6B.jinja").render(messages, tools=TOOLS)
    assert messages == before


# --- caps ---

def test_caps_of_a_full_featured_template():
    caps = load("Qwen-Qwen2.5-7B-Instruct.jinja").caps
    assert caps == TemplateCaps(
        supports_system_role=True, supports_tools=True, supports_tool_calls=True,
        supports_parallel_tool_calls=True, supports_object_arguments=True, supports_string_content=True,
        supports_typed_content=False, requires_typed_content=False, supports_thinking=False,
        supports_preserve_reasoning=False, supports_reasoning_effort=False, requires_tools=False,
    )


@pytest.mark.parametrize("name, field, value", [
    ("google-gemma-2-2b-it.jinja", "supports_system_role", False),  # raises "System role not supported"
    ("google-gemma-2-2b-it.jinja", "supports_tools", False),
    ("meta-llama-Llama-3.1-8B-Instruct.jinja", "supports_tool_calls", True),
    ("meta-llama-Llama-3.1-8B-Instruct.jinja", "supports_parallel_tool_calls", False),  # single calls only
    ("LFM2-8B-A1B.jinja", "supports_tools", True),
    ("LFM2-8B-A1B.jinja", "supports_tool_calls", False),  # calls live in the content there
    ("meetkai-functionary-medium-v3.2.jinja", "supports_object_arguments", False),
    ("Qwen3-Coder.jinja", "supports_object_arguments", True),
    ("Kimi-K2-Instruct.jinja", "supports_typed_content", True),
    ("Qwen-Qwen3-0.6B.jinja", "supports_thinking", True),
    ("Qwen-Qwen2.5-7B-Instruct.jinja", "supports_thinking", False),
    ("GLM-4.7-Flash.jinja", "supports_preserve_reasoning", True),
    ("openai-gpt-oss-120b.jinja", "supports_reasoning_effort", True),
    ("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja", "requires_tools", True),
    ("Qwen-Qwen2.5-7B-Instruct.jinja", "requires_tools", False),
])
def test_caps_of_vendor_templates(name, field, value):
    assert getattr(load(name).caps, field) is value


TYPED_ONLY = (
    "{% for m in messages %}<{{ m.role }}>{% for part in m.content %}{{ part.text }}{% endfor %}</{{ m.role }}>"
    "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
)


def test_typed_only_template_gets_string_content_as_parts():
    tmpl = ChatTemplate(TYPED_ONLY)
    assert tmpl.caps.requires_typed_content and not tmpl.caps.supports_string_content
    assert tmpl.render([{"role": "user", "content": "Hello"}]) == "<user>Hello</user><assistant>"
    assert tmpl.prepare_messages([{"role": "user", "content": "Hi"}]) == [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]}]


def test_string_only_template_gets_parts_joined():
    tmpl = load("google-gemma-2-2b-it.jinja")
    text = tmpl.render([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}])
    assert "a\nb" in text and "'type'" not in text
    with pytest.raises(TemplateError, match="image_url"):
        tmpl.render([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])


def test_system_message_merged_when_the_template_rejects_the_role():
    tmpl = load("google-gemma-2-2b-it.jinja")
    assert tmpl.render(BASIC[:2]) == (
        f"{BOS}<start_of_turn>user\n{SYSTEM}\nHi there!<end_of_turn>\n<start_of_turn>model\n")
    assert "System role not supported" in _raw_error(tmpl, BASIC[:2])  # what the merge avoids


def _raw_error(tmpl, messages) -> str:
    try:
        tmpl._render_raw(messages, add_generation_prompt=True)
    except Exception as e:  # noqa: BLE001
        return str(e)
    return ""


def test_developer_role_is_system_except_for_gpt_oss():
    qwen = load("Qwen-Qwen2.5-7B-Instruct.jinja")
    assert "<|im_start|>system\nBe brief.<|im_end|>" in qwen.render(
        [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    gpt_oss = load("openai-gpt-oss-120b.jinja")
    assert gpt_oss.prepare_messages([{"role": "developer", "content": "x"}])[0]["role"] == "developer"


def test_tool_call_arguments_follow_the_template():
    string_args = [{"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]}]
    object_args = [{"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}]
    qwen = load("Qwen-Qwen2.5-7B-Instruct.jinja")  # reads arguments as an object
    assert qwen.prepare_messages(string_args)[0]["tool_calls"][0]["function"]["arguments"] == {"a": 1}
    functionary = load("meetkai-functionary-medium-v3.2.jinja")  # prints them as they are
    assert functionary.prepare_messages(object_args)[0]["tool_calls"][0]["function"]["arguments"] == '{"a": 1}'
    with pytest.raises(TemplateError, match="not valid JSON"):
        qwen.render([{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}])


def test_tool_call_turn_without_content_gets_empty_content():
    tmpl = load("Qwen-Qwen2.5-7B-Instruct.jinja")
    msgs = tmpl.prepare_messages([{"role": "assistant", "content": None, "tool_calls": [tool_call("c", "Rome")]}])
    assert msgs[0]["content"] == ""


def test_tool_use_variant_gets_an_empty_tools_list():
    tmpl = load("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja")
    assert tmpl.template_inputs(BASIC)["tools"] == []
    assert "What is the capital of France?" in tmpl.render(BASIC)


def test_firefunction_gets_llama_cpp_variables():
    tmpl = load("fireworks-ai-llama-3-firefunction-v2.jinja")
    text = tmpl.render(BASIC, tools=TOOLS)
    assert "Today is Mar 07 2025." in text
    assert '"name": "get_weather"' in text


def test_llama_3_gets_todays_date_as_llama_cpp_gives_it():
    # HF leaves date_string unset, and the template falls back to the day it was written
    for name in ("meta-llama-Llama-3.3-70B-Instruct.jinja", "meta-llama-Llama-3.1-8B-Instruct.jinja"):
        text = load(name).render(BASIC)
        assert "Today Date: 07 Mar 2025" in text and "26 Jul 2024" not in text


# --- HF semantics of the environment ---

def test_tojson_is_transformers_tojson():
    tmpl = ChatTemplate(
        "{{ messages[0].content | tojson }}|{{ messages[0].content | tojson(indent=2) }}|"
        "{{ messages[0].content | tojson(separators=(',', ':'), sort_keys=true) }}|"
        "{{ messages[0].content | tojson(ensure_ascii=true) }}"
    )
    value = {"b": "<é>", "a": [1, 2]}
    text = tmpl.render([{"role": "user", "content": value}])
    assert text.split("|") == [
        '{"b": "<é>", "a": [1, 2]}',
        '{\n  "b": "<é>",\n  "a": [\n    1,\n    2\n  ]\n}',
        '{"a":[1,2],"b":"<é>"}',
        '{"b": "<\\u00e9>", "a": [1, 2]}',
    ]


def test_strftime_now():
    assert ChatTemplate("{{ strftime_now('%Y-%m-%d %H:%M') }}").render([{"role": "user", "content": "x"}]) \
        == "2025-03-07 14:30"


def test_trim_blocks_lstrip_blocks_and_loop_controls():
    tmpl = ChatTemplate(
        "{% for m in messages %}\n"
        "    {% if m.role == 'assistant' %}{% continue %}{% endif %}\n"
        "[{{ m.content }}]\n"
        "    {% if loop.index > 2 %}{% break %}{% endif %}\n"
        "{% endfor %}"
    )
    messages = [{"role": "user", "content": c} for c in "ab"] + [{"role": "assistant", "content": "c"}] + [
        {"role": "user", "content": c} for c in "de"]
    assert tmpl.render(messages) == "[a]\n[b]\n[d]\n"


def test_generation_tag_renders_its_body():
    tmpl = ChatTemplate("{% for m in messages %}{% generation %}<{{ m.content }}>{% endgeneration %}{% endfor %}")
    assert tmpl.render([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]) == "<a><b>"


def test_kwargs_reach_the_template_and_override_special_tokens():
    tmpl = ChatTemplate("{{ bos_token }}{{ eos_token }}{{ custom }}", bos_token="B", eos_token="E")
    msgs = [{"role": "user", "content": "x"}]
    assert tmpl.render(msgs, custom="C") == "BEC"
    assert tmpl.render(msgs, bos_token="b") == "bE"
    with pytest.raises(TemplateError, match="messages"):
        tmpl.render(msgs, messages=[])


def test_reasoning_is_given_under_both_names():
    tmpl = ChatTemplate("{% for m in messages %}{{ m.reasoning_content }}/{{ m.thinking }};{% endfor %}")
    assert tmpl.render([{"role": "assistant", "content": "a", "reasoning": "r"}],
                       add_generation_prompt=False) == "r/r;"


def test_generation_prompt():
    assert load("Qwen-Qwen2.5-7B-Instruct.jinja").generation_prompt() == "<|im_start|>assistant\n"
    qwen3 = load("Qwen-Qwen3-0.6B.jinja")
    assert qwen3.generation_prompt(enable_thinking=False) == "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    assert load("google-gemma-2-2b-it.jinja").generation_prompt(BASIC) == "<start_of_turn>model\n"


def test_continue_final_message():
    tmpl = load("Qwen-Qwen2.5-7B-Instruct.jinja")
    text = tmpl.render([{"role": "user", "content": "Count"}, {"role": "assistant", "content": "1, 2,"}],
                       continue_final_message=True)
    assert text.endswith("<|im_start|>user\nCount<|im_end|>\n<|im_start|>assistant\n1, 2,")
    with pytest.raises(TemplateError, match="assistant"):
        tmpl.render([{"role": "user", "content": "x"}], continue_final_message=True)


def test_concurrent_renders_agree():
    tmpl = load("meta-llama-Llama-3.1-8B-Instruct.jinja")
    expected = tmpl.render(BASIC, tools=TOOLS)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: tmpl.render(BASIC, tools=TOOLS), range(64)))
    assert results == [expected] * 64


# --- errors ---

def test_raise_exception_message_passes_through():
    tmpl = ChatTemplate("{% if messages[0].role != 'user' %}{{ raise_exception('First message must be user') }}"
                        "{% endif %}ok")
    assert tmpl.render([{"role": "user", "content": "x"}]) == "ok"
    with pytest.raises(TemplateError) as info:
        tmpl.render([{"role": "assistant", "content": "x"}])
    assert str(info.value) == "First message must be user"


def test_vendor_raise_exception_reaches_the_caller():
    tmpl = load("google-gemma-2-2b-it.jinja")
    with pytest.raises(TemplateError, match="Conversation roles must alternate"):
        tmpl.render([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])


@pytest.mark.parametrize("source, match", [
    ("{% for m in messages %}{{ m.content }}", "syntax error at line 1"),
    ("hello\n{{ messages | no_such_filter }}", "no_such_filter"),
    ("{% if %}", "syntax error"),
    ("", "empty"),
])
def test_bad_templates_fail_at_construction(source, match):
    with pytest.raises(TemplateError, match=match):
        ChatTemplate(source)


def test_undefined_values_fail_at_render():
    tmpl = ChatTemplate("{{ missing.attribute }}")
    with pytest.raises(TemplateError, match="'missing' is undefined"):
        tmpl.render([{"role": "user", "content": "x"}])


@pytest.mark.parametrize("source", [
    "{{ messages.__class__.__mro__ }}",
    "{% set x = [] %}{{ x.append(1) }}",  # immutable sandbox, as in transformers
    "{% set ns = namespace() %}{% set ns._secret = 1 %}",
    "{{ dict.__call__.__globals__ }}",
])
def test_sandbox_refuses_escapes(source):
    with pytest.raises(TemplateError):
        ChatTemplate(source).render([{"role": "user", "content": "x"}])


def test_no_messages_render_what_the_template_writes_around_none():
    chatml = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}<|im_start|>assistant\n"
    assert ChatTemplate(chatml).render([]) == "<|im_start|>assistant"  # jinja drops the final newline, as in HF
    # a template that reads the first message fails as a template error (a 400), not a crash
    with pytest.raises(TemplateError, match="no element 0"):
        load("Qwen-Qwen2.5-7B-Instruct.jinja").render([])


@pytest.mark.parametrize("messages, match", [
    ("hello", "array"),
    ([{"content": "no role"}], "role"),
    (["text"], "object"),
])
def test_bad_messages(messages, match):
    with pytest.raises(TemplateError, match=match):
        load("Qwen-Qwen2.5-7B-Instruct.jinja").render(messages)


def test_template_errors_are_value_errors():
    assert issubclass(TemplateError, ValueError)
