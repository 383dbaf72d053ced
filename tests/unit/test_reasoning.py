"""Reasoning extraction: llama-server's reasoning formats, think blocks opened by the prompt, each family's markers."""

from __future__ import annotations

import pytest

from llamaserve.chat.formats import detect_format
from llamaserve.chat.output import ReasoningMode, reasoning_mode
from tests.helpers import template_source
from tests.unit.chat_output_helpers import calls, check_streaming

QWEN3 = "Qwen-Qwen3-0.6B"
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}


def parse(template, output, **kwargs):
    message, problems = check_streaming(detect_format(template_source(template)), output, **kwargs)
    assert problems == []
    return message


def test_reasoning_modes():
    assert reasoning_mode("none", stream=True) == ReasoningMode.RAW
    assert reasoning_mode("auto", stream=True) == ReasoningMode.SEPARATE
    assert reasoning_mode("deepseek", stream=True) == ReasoningMode.SEPARATE
    assert reasoning_mode("deepseek-legacy", stream=False) == ReasoningMode.SEPARATE
    assert reasoning_mode("deepseek-legacy", stream=True) == ReasoningMode.INLINE
    with pytest.raises(ValueError, match="unknown reasoning format"):
        reasoning_mode("qwen", stream=False)


OUT = "<think>\nLet me think.\n</think>\n\nThe answer is 4."


@pytest.mark.parametrize("fmt", ["auto", "deepseek"])
def test_think_block_goes_to_reasoning_content(fmt):
    message = parse(QWEN3, OUT, reasoning_format=fmt)
    assert (message.reasoning_content, message.content) == ("Let me think.", "The answer is 4.")


def test_none_leaves_thoughts_in_content():
    message = parse(QWEN3, OUT, reasoning_format="none")
    assert (message.reasoning_content, message.content) == ("", OUT)


def test_deepseek_legacy_splits_unless_streaming_where_thoughts_stay_inline():
    message = parse(QWEN3, OUT, reasoning_format="deepseek-legacy", stream=False)
    assert (message.reasoning_content, message.content) == ("Let me think.", "The answer is 4.")
    message = parse(QWEN3, OUT, reasoning_format="deepseek-legacy", stream=True)
    assert (message.reasoning_content, message.content) == ("", OUT)


def test_think_block_opened_by_the_prompt():
    # QwQ and R1 templates end the generation prompt with "<think>\n": the output only closes it
    message = parse("Qwen-QwQ-32B", "Hmm, 2+2.\n</think>\n\n4", prompt="<|im_start|>assistant\n<think>\n")
    assert (message.reasoning_content, message.content) == ("Hmm, 2+2.", "4")
    message = parse("Qwen-QwQ-32B", "Hmm.</think>4", prompt="<think>\n", reasoning_format="deepseek-legacy", stream=True)
    assert message.content == "<think>Hmm.</think>4"
    # ... and a closed block in the prompt (thinking disabled) means none is open
    message = parse(QWEN3, "Hmm.</think>4", prompt="<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert (message.reasoning_content, message.content) == ("", "Hmm.</think>4")


def test_unfinished_thoughts_are_reasoning():
    message = parse(QWEN3, "<think>\nStill thinking when the token limit hit")
    assert (message.reasoning_content, message.content) == ("Still thinking when the token limit hit", "")
    message = parse("Qwen-QwQ-32B", "cut off", prompt="<think>\n")
    assert (message.reasoning_content, message.content) == ("cut off", "")


def test_think_tag_later_in_the_text_is_content():
    message = parse(QWEN3, "Use <think> tags like <think>this</think>.")
    assert (message.reasoning_content, message.content) == ("", "Use <think> tags like <think>this</think>.")


def test_tool_markup_inside_thoughts_is_not_a_call():
    out = ('<think>I could emit <tool_call>{"name": "get_weather"}</tool_call> now.</think>\n'
           '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool_call>')
    message = parse(QWEN3, out, tools=[WEATHER])
    assert message.reasoning_content == 'I could emit <tool_call>{"name": "get_weather"}</tool_call> now.'
    assert calls(message) == [("get_weather", {"location": "Paris"})] and message.content == ""


def test_reasoning_without_tools_and_with_tools_agree():
    assert parse(QWEN3, OUT) == parse(QWEN3, OUT, tools=[WEATHER])


@pytest.mark.parametrize("template,prompt,output,reasoning,content", [
    ("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", "<｜Assistant｜><think>\n", "Because.\n</think>\n\nYes.", "Because.", "Yes."),
    ("deepseek-ai-DeepSeek-V3.1", "<｜Assistant｜><think>", "Because.</think>Yes.", "Because.", "Yes."),
    ("deepseek-ai-DeepSeek-V3.1", "<｜Assistant｜><think></think>", "Yes.", "", "Yes."),
    ("mistralai-Ministral-3-14B-Reasoning-2512", "[/INST]", "[THINK]Because.[/THINK]Yes.", "Because.", "Yes."),
    ("CohereForAI-c4ai-command-r7b-12-2024-tool_use", "<|CHATBOT_TOKEN|>",
     "<|START_THINKING|>Because.<|END_THINKING|><|START_RESPONSE|>Yes.<|END_RESPONSE|>", "Because.", "Yes."),
    ("ibm-granite-granite-3.3-2B-Instruct", "<|start_of_role|>assistant<|end_of_role|>",
     "<think>Because.</think><response>Yes.</response>", "Because.", "Yes."),
    ("openai-gpt-oss-120b", "<|start|>assistant",
     "<|channel|>analysis<|message|>Because.<|end|><|start|>assistant<|channel|>final<|message|>Yes.", "Because.", "Yes."),
    ("NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", "<|im_start|>assistant\n<think>\n", "Because.\n</think>\nYes.", "Because.", "Yes."),
    # a template that knows nothing of thinking still gets <think> extracted (distilled models write it anyway)
    ("google-gemma-2-2b-it", "<start_of_turn>model\n", "<think>Because.</think>Yes.", "Because.", "Yes."),
])
def test_family_reasoning_markers(template, prompt, output, reasoning, content):
    message = parse(template, output, prompt=prompt)
    assert (message.reasoning_content, message.content) == (reasoning, content)


def test_harmony_reasoning_none_keeps_the_raw_channels():
    out = "<|channel|>analysis<|message|>Because.<|end|><|start|>assistant<|channel|>final<|message|>Yes."
    message = parse("openai-gpt-oss-120b", out, prompt="<|start|>assistant", reasoning_format="none")
    assert (message.reasoning_content, message.content) == ("", out)
    message = parse("openai-gpt-oss-120b", out, prompt="<|start|>assistant", reasoning_format="deepseek-legacy", stream=True)
    assert message.content == "<think>Because.</think>Yes."


def test_harmony_plain_text_without_channels_is_content():
    message = parse("openai-gpt-oss-120b", "Just text.", prompt="<|start|>assistant")
    assert message.content == "Just text."


def test_reasoning_streams_as_it_is_written():
    from tests.unit.chat_output_helpers import run

    fmt = detect_format(template_source(QWEN3))
    deltas, _, _ = run(fmt, ["<think>\nOne", " two", " three\n</think>\n\nDone"])
    assert deltas == [{"reasoning_content": "One"}, {"reasoning_content": " two"}, {"reasoning_content": " three"},
                      {"content": "Done"}]


def test_thinking_open_is_read_from_the_prompt_end():
    fmt = detect_format(template_source("Qwen-QwQ-32B"))
    assert fmt.thinking_open("...<|im_start|>assistant\n<think>\n")
    assert not fmt.thinking_open("...<|im_start|>assistant\n")
    assert not fmt.thinking_open("...<think>\n\n</think>\n\n")
    assert fmt.supports_reasoning
    assert not detect_format(template_source("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use")).supports_reasoning


def test_reasoning_close_ends_thoughts_for_a_budget():
    assert detect_format(template_source(QWEN3)).reasoning_close == "</think>"
    assert detect_format(template_source("CohereForAI-c4ai-command-r7b-12-2024-tool_use")).reasoning_close == "<|END_THINKING|>"
    harmony = detect_format(template_source("openai-gpt-oss-120b"))
    out = "<|channel|>analysis<|message|>Long thoughts" + harmony.reasoning_close + "Answer."
    message = parse("openai-gpt-oss-120b", out, prompt="<|start|>assistant")
    assert (message.reasoning_content, message.content) == ("Long thoughts", "Answer.")
