"""Round trip through the real templates: a conversation with tool calls rendered by the family's own
template reads back, through the family's parser, as the same calls; the generic fallback renders
tools into templates without tool support."""

from __future__ import annotations

import functools
import json

import pytest

from llamaserve.chat import ChatTemplate
from llamaserve.chat.formats import detect_format
from llamaserve.chat.output import parse_output
from tests.helpers import template_source
from tests.unit.chat_output_helpers import PYTHON, WEATHER, calls

TOOLS = [WEATHER, PYTHON]
CALL = {"id": "a1b2c3d4e", "type": "function", "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}}
QUESTION = [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "Weather in Paris?"}]

# where an assistant turn ends in each template (the model's end-of-generation tokens)
TURN_ENDS = ("<|im_end|>", "<sep>", "<seed:eos>", "[e~[", "<|role_end|>", "</assistant>", "<SPECIAL_12>", "<|end|>", "<|eot_id|>", "<|eom_id|>", "<｜end▁of▁sentence｜>", "</s>", "<|END_OF_TURN_TOKEN|>",
             "<|end_of_text|>", "<|call|>", "<|return|>", "<end_of_turn>")

ROUND_TRIP = [
    "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use", "NousResearch-Hermes-3-Llama-3.1-8B-tool_use",
    "Qwen-Qwen2.5-7B-Instruct", "Qwen-Qwen3-0.6B", "Qwen-QwQ-32B", "ibm-granite-granite-4.0",
    "Qwen3-Coder", "Qwen3.5-4B", "NVIDIA-Nemotron-3-Nano-30B-A3B-BF16",
    "meta-llama-Llama-3.1-8B-Instruct", "meta-llama-Llama-3.2-3B-Instruct", "meta-llama-Llama-3.3-70B-Instruct",
    "mistralai-Mistral-Nemo-Instruct-2407", "Mistral-Small-3.2-24B-Instruct-2506", "unsloth-mistral-Devstral-Small-2507",
    "mistralai-Ministral-3-14B-Reasoning-2512",
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", "deepseek-ai-DeepSeek-V3.1",
    "meetkai-functionary-medium-v3.1", "meetkai-functionary-medium-v3.2",
    "CohereForAI-c4ai-command-r7b-12-2024-tool_use", "fireworks-ai-llama-3-firefunction-v2", "openai-gpt-oss-120b",
    "ByteDance-Seed-OSS", "MiniMax-M2", "GLM-4.6", "GLM-4.7-Flash", "poolside-Laguna-XS.2", "inclusionai-ling-3.0-flash",
    "Spark2.5", "NVIDIA-Nemotron-Nano-v2", "unsloth-Apriel-1.5", "Apriel-1.6-15b-Thinker-fixed", "MiMo-VL", "Reka-Edge",
]
# Granite 3.3's template shows tools but renders past assistant turns by their content only; the
# R1-Distill-Llama one writes calls only for a message whose content is null (a key the renderer drops).
PROMPT_ONLY = ["ibm-granite-granite-3.3-2B-Instruct", "deepseek-ai-DeepSeek-R1-Distill-Llama-8B"]


@functools.lru_cache(maxsize=None)
def _template(name):
    return ChatTemplate(template_source(name), bos_token="<s>", eos_token="</s>")


def _assistant_turn(tmpl, fmt, messages, tools):
    """The assistant's last turn as its template writes it, and the text before it."""
    msgs, tools_for_template = fmt.prepare_messages(messages, tools)
    before, _ = fmt.prepare_messages(messages[:-1], tools)
    prompt = tmpl.render(before, add_generation_prompt=True, tools=tools_for_template)
    full = tmpl.render(msgs, add_generation_prompt=False, tools=tools_for_template)
    n = 0
    for a, b in zip(prompt, full):
        if a != b:
            break
        n += 1
    # a split inside a special marker ("<t" shared by "<think>" and "<tool_call>") goes back to its start
    opener = max(full.rfind("<", 0, n), full.rfind("[", 0, n))
    if opener >= 0 and not any(c in full[opener:n] for c in ">]"):
        n = opener
    turn = full[n:]
    ends = [turn.find(e) for e in TURN_ENDS if e in turn]
    turn = turn[: min(ends)] if ends else turn
    # a template that opens <think> in the generation prompt writes past turns with an empty block closed:
    # the reply as generated is then the rest of that block
    if fmt.thinking_open(prompt) and fmt.reasoning_end and turn.lstrip().startswith(fmt.reasoning_end):
        return prompt, turn
    return full[:n], turn


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_template_written_call_parses_back(name):
    tmpl, fmt = _template(name), detect_format(template_source(name))
    # (no system message: some templates move it into the last user turn, which then is not the same)
    messages = [QUESTION[1], {"role": "assistant", "content": "", "tool_calls": [CALL]}]
    prompt, turn = _assistant_turn(tmpl, fmt, messages, TOOLS)
    message, problems = parse_output(fmt, turn, TOOLS, prompt=prompt)
    assert calls(message) == [("get_weather", {"location": "Paris"})], (turn, problems)
    assert message.content == "" and problems == []


@pytest.mark.parametrize("name", ROUND_TRIP + PROMPT_ONLY)
def test_tools_reach_the_prompt(name):
    tmpl, fmt = _template(name), detect_format(template_source(name))
    msgs, tools_for_template = fmt.prepare_messages(QUESTION, TOOLS)
    prompt = tmpl.render(msgs, add_generation_prompt=True, tools=tools_for_template)
    assert "get_weather" in prompt


def test_conversation_with_tool_results_renders():
    for name in ROUND_TRIP + PROMPT_ONLY:
        tmpl, fmt = _template(name), detect_format(template_source(name))
        messages = [*QUESTION, {"role": "assistant", "content": "", "tool_calls": [CALL]},
                    {"role": "tool", "tool_call_id": CALL["id"], "name": "get_weather", "content": "18 degrees, sunny"}]
        msgs, tools_for_template = fmt.prepare_messages(messages, TOOLS)
        prompt = tmpl.render(msgs, add_generation_prompt=True, tools=tools_for_template)
        assert "18 degrees, sunny" in prompt, name


@pytest.mark.parametrize("name", ["google-gemma-2-2b-it", "microsoft-Phi-3.5-mini-instruct", "Apertus-8B-Instruct"])
def test_generic_fallback_describes_tools_and_replays_history(name):
    tmpl, fmt = _template(name), detect_format(template_source(name))
    assert fmt.name == "generic"
    messages = [*QUESTION, {"role": "assistant", "content": None, "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": CALL["id"], "content": "18 degrees, sunny"}]
    msgs, tools_for_template = fmt.prepare_messages(messages, TOOLS)
    assert tools_for_template is None
    prompt = tmpl.render(msgs, add_generation_prompt=True)
    assert '"name": "get_weather"' in prompt and '{"tool_call": {"name": <tool name>' in prompt
    assert '{"tool_call": {"name": "get_weather", "arguments": {"location": "Paris"}}}' in prompt
    assert '"tool_response"' in prompt and "18 degrees, sunny" in prompt
    # the reply the prompt asks for parses as the call
    message, problems = parse_output(fmt, json.dumps({"tool_call": {"name": "get_weather", "arguments": {"location": "Oslo"}}}), TOOLS)
    assert calls(message) == [("get_weather", {"location": "Oslo"})] and problems == []


def test_thinking_opened_by_the_generation_prompt_is_seen():
    for name, kwargs, opened in [
        # (the shared QwQ, R1 and Nemotron templates are llama.cpp's: thinking only with enable_thinking)
        ("Qwen-QwQ-32B", {"enable_thinking": True}, True),
        ("Qwen-QwQ-32B", {}, False),
        ("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", {"enable_thinking": True}, True),
        ("Qwen-Qwen3-0.6B", {"enable_thinking": False}, False),
        ("Qwen-Qwen3-0.6B", {}, False),
        ("deepseek-ai-DeepSeek-V3.1", {"thinking": True}, True),
        ("deepseek-ai-DeepSeek-V3.1", {}, False),
        ("NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", {}, True),
        ("NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", {"enable_thinking": False}, False),
        ("CohereForAI-c4ai-command-r7b-12-2024-tool_use", {}, False),
    ]:
        tmpl, fmt = _template(name), detect_format(template_source(name))
        head = tmpl.generation_prompt(QUESTION, tools=TOOLS, **kwargs)
        assert fmt.thinking_open(head) == opened, (name, kwargs, head)
