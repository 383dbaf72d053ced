"""Tool-call parsing per model family: real output formats, complete and streamed in every split."""

from __future__ import annotations

import json

import pytest

from llamaserve.chat.formats import FORMATS, detect_format
from llamaserve.chat.output import OutputParser, parse_output
from tests.helpers import template_source
from tests.unit.chat_output_helpers import PYTHON, WEATHER, assemble, calls, check_streaming, ids, run

CALC = {"type": "function", "function": {
    "name": "calc", "description": "Arithmetic",
    "parameters": {"type": "object", "properties": {
        "a": {"type": "integer"}, "b": {"type": "number"}, "op": {"type": "string", "enum": ["add", "mul"]},
        "opts": {"type": "object"}, "note": {"type": ["string", "null"]},
    }, "required": ["a", "b", "op"]},
}}
TOOLS = [WEATHER, PYTHON, CALC]
PARIS = ("get_weather", {"location": "Paris"})

DS = {k: f"<｜{v}｜>" for k, v in {
    "calls": "tool▁calls▁begin", "calls_end": "tool▁calls▁end", "call": "tool▁call▁begin",
    "call_end": "tool▁call▁end", "sep": "tool▁sep"}.items()}

# (template, prompt tail, output, content, reasoning, calls)
CASES = [
    # Hermes 2 Pro / 3, Qwen 2.5, Qwen 3, QwQ, Granite 4
    ("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use", "",
     '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool_call>', "", "", [PARIS]),
    ("NousResearch-Hermes-3-Llama-3.1-8B-tool_use", "",
     'Let me look.\n<tool_call>\n{"arguments": {"location": "Paris"}, "name": "get_weather"}\n</tool_call>',
     "Let me look.", "", [PARIS]),
    ("Qwen-Qwen2.5-7B-Instruct", "",
     '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool_call>\n'
     '<tool_call>\n{"name": "calc", "arguments": {"a": 1, "b": 2.5, "op": "add"}}\n</tool_call>',
     "", "", [PARIS, ("calc", {"a": 1, "b": 2.5, "op": "add"})]),
    ("Qwen-Qwen3-0.6B", "",
     '<think>\nThe user wants weather.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool_call>',
     "", "The user wants weather.", [PARIS]),
    ("Qwen-Qwen3-0.6B", "<|im_start|>assistant\n<think>\n\n</think>\n\n",
     "Hello! <think> is just text here.", "Hello! <think> is just text here.", "", []),
    ("Qwen-QwQ-32B", "<|im_start|>assistant\n<think>\n",
     'Thinking about it...\n</think>\n\nIt is sunny.', "It is sunny.", "Thinking about it...", []),
    ("ibm-granite-granite-4.0", "",
     'Sure.<tool_call>\n{"name": "get_weather", "arguments": "{\\"location\\": \\"Paris\\"}"}\n</tool_call>', "Sure.", "", [PARIS]),
    # Qwen3-Coder XML (also Qwen3.5, Nemotron 3 Nano)
    ("Qwen3-Coder", "",
     'I will check.\n<tool_call>\n<function=get_weather>\n<parameter=location>\nParis\n</parameter>\n</function>\n</tool_call>',
     "I will check.", "", [PARIS]),
    ("Qwen3-Coder", "",
     '<tool_call>\n<function=calc>\n<parameter=a>\n2\n</parameter>\n<parameter=b>\n0.5\n</parameter>\n'
     '<parameter=op>\nmul\n</parameter>\n<parameter=opts>\n{"round": true}\n</parameter>\n</function>\n</tool_call>\n'
     '<tool_call>\n<function=python>\n<parameter=code>\nprint("a\\tb")\nx = 1 < 2\n</parameter>\n</function>\n</tool_call>',
     "", "", [("calc", {"a": 2, "b": 0.5, "op": "mul", "opts": {"round": True}}),
              ("python", {"code": 'print("a\\tb")\nx = 1 < 2'})]),
    ("Qwen3.5-4B", "<|im_start|>assistant\n<think>\n",
     'Need weather.\n</think>\n\n<tool_call>\n<function=get_weather>\n<parameter=location>\nParis\n</parameter>\n</function>\n</tool_call>',
     "", "Need weather.", [PARIS]),
    ("NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", "",
     '<tool_call>\n<function=get_weather>\n<parameter=location>\nParis\n</parameter>\n</function>\n</tool_call>', "", "", [PARIS]),
    # Seed-OSS, MiniMax M2: the same idea with other tags, values inline
    ("ByteDance-Seed-OSS", "<seed:bos>assistant\n",
     '<seed:think>Weather.</seed:think><seed:tool_call>\n<function=get_weather>\n<parameter=location>Paris</parameter>\n'
     '</function>\n</seed:tool_call>', "", "Weather.", [PARIS]),
    ("MiniMax-M2", "]~b]ai\n",
     '<think>Weather.</think>\n<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="location">Paris</parameter>\n'
     '</invoke>\n<invoke name="calc">\n<parameter name="a">1</parameter>\n<parameter name="b">2</parameter>\n'
     '<parameter name="op">add</parameter>\n</invoke>\n</minimax:tool_call>',
     "", "Weather.", [PARIS, ("calc", {"a": 1, "b": 2, "op": "add"})]),
    # GLM 4.5+, Laguna, Ling, Spark: <arg_key>/<arg_value> pairs
    ("GLM-4.6", "<|assistant|>",
     '\n<think>Weather.</think>\n<tool_call>get_weather\n<arg_key>location</arg_key>\n<arg_value>Paris</arg_value>\n</tool_call>',
     "", "Weather.", [PARIS]),
    ("GLM-4.7-Flash", "<|assistant|><think>",
     'Weather.</think><tool_call>calc<arg_key>a</arg_key><arg_value>3</arg_value><arg_key>b</arg_key><arg_value>1.5</arg_value>'
     '<arg_key>op</arg_key><arg_value>mul</arg_value></tool_call>',
     "", "Weather.", [("calc", {"a": 3, "b": 1.5, "op": "mul"})]),
    ("poolside-Laguna-XS.2", "<assistant>\n</think>",
     '\n<tool_call>get_weather\n<arg_key>location</arg_key>\n<arg_value>Paris</arg_value>\n</tool_call>', "", "", [PARIS]),
    # JSON lists between tags: Nemotron Nano v2, Apriel
    ("NVIDIA-Nemotron-Nano-v2", "<SPECIAL_11>Assistant\n<think>\n",
     'Weather.\n</think>\n<TOOLCALL>[{"name": "get_weather", "arguments": {"location": "Paris"}}]</TOOLCALL>', "", "Weather.", [PARIS]),
    ("Apriel-1.6-15b-Thinker-fixed", "\n<|begin_assistant|>\nHere are my reasoning steps:\n",
     'The user wants weather.\n[BEGIN FINAL RESPONSE]\n<tool_calls>[{"name": "get_weather", "arguments": "{\\"location\\": \\"Paris\\"}"}]</tool_calls>',
     "", "The user wants weather.", [PARIS]),
    ("unsloth-Apriel-1.5", "<|assistant|>\n",
     'Here are my reasoning steps:\nEasy.\n[BEGIN FINAL RESPONSE]\nIt is sunny.\n[END FINAL RESPONSE]\n<|end|>', "It is sunny.", "Easy.", []),
    # Llama 3.x
    ("meta-llama-Llama-3.1-8B-Instruct", "",
     '{"name": "get_weather", "parameters": {"location": "Paris"}}', "", "", [PARIS]),
    ("meta-llama-Llama-3.2-3B-Instruct", "",
     ' {"type": "function", "name": "get_weather", "parameters": {"location": "Paris"}}', "", "", [PARIS]),
    ("meta-llama-Llama-3.3-70B-Instruct", "",
     '<|python_tag|>import math\nprint(math.pi)', "", "", [("python", {"code": "import math\nprint(math.pi)"})]),
    ("meta-llama-Llama-3.3-70B-Instruct", "",
     '{"answer": 42}', '{"answer": 42}', "", []),
    ("meta-llama-Llama-3.1-8B-Instruct", "",
     'The weather {"name": "x"} is fine.', 'The weather {"name": "x"} is fine.', "", []),
    # Mistral
    ("mistralai-Mistral-Nemo-Instruct-2407", "",
     '[TOOL_CALLS][{"name": "get_weather", "arguments": {"location": "Paris"}, "id": "a1b2c3d4e"}, '
     '{"name": "python", "arguments": {"code": "1+1"}, "id": "zzzzzzzzz"}]',
     "", "", [PARIS, ("python", {"code": "1+1"})]),
    ("Mistral-Small-3.2-24B-Instruct-2506", "",
     'Checking.[TOOL_CALLS]get_weather[CALL_ID]a1b2c3d4e[ARGS]{"location": "Paris"}[TOOL_CALLS]python[ARGS]{"code": "1"}',
     "Checking.", "", [PARIS, ("python", {"code": "1"})]),
    ("unsloth-mistral-Devstral-Small-2507", "",
     '[TOOL_CALLS]get_weather[ARGS]{"location": "Paris"}', "", "", [PARIS]),
    ("mistralai-Ministral-3-14B-Reasoning-2512", "",
     '[THINK]Weather needed.[/THINK][TOOL_CALLS]get_weather[ARGS]{"location": "Paris"}', "", "Weather needed.", [PARIS]),
    # DeepSeek
    ("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", "<｜Assistant｜><think>\n",
     'Use the tool.\n</think>\n\n' + DS["calls"] + DS["call"] + 'function' + DS["sep"] + 'get_weather\n```json\n{"location": "Paris"}\n```'
     + DS["call_end"] + "\n" + DS["call"] + 'function' + DS["sep"] + 'python\n```json\n{"code": "1"}\n```' + DS["call_end"] + DS["calls_end"],
     "", "Use the tool.", [PARIS, ("python", {"code": "1"})]),
    ("deepseek-ai-DeepSeek-R1-Distill-Llama-8B", "<｜Assistant｜><think>\n",
     'Easy.</think>The answer is 4.', "The answer is 4.", "Easy.", []),
    ("deepseek-ai-DeepSeek-V3.1", "<｜Assistant｜></think>",
     'On it.' + DS["calls"] + DS["call"] + 'get_weather' + DS["sep"] + '{"location": "Paris"}' + DS["call_end"] + DS["calls_end"],
     "On it.", "", [PARIS]),
    ("deepseek-ai-DeepSeek-V3.1", "<｜Assistant｜><think>",
     'hmm</think>Hi', "Hi", "hmm", []),
    # Functionary
    ("meetkai-functionary-medium-v3.1", "",
     'Sure.<function=get_weather>{"location": "Paris"}</function>', "Sure.", "", [PARIS]),
    ("meetkai-functionary-medium-v3.1", "",
     '<|python_tag|>print(1)', "", "", [("python", {"code": "print(1)"})]),
    ("meetkai-functionary-medium-v3.2", "<|start_header_id|>assistant<|end_header_id|>\n\n>>>",
     'get_weather\n{"location": "Paris"}>>>python\n{"code": "1"}', "", "", [PARIS, ("python", {"code": "1"})]),
    ("meetkai-functionary-medium-v3.2", "<|start_header_id|>assistant<|end_header_id|>\n\n>>>",
     'all\nLet me check.>>>get_weather\n{"location": "Paris"}', "Let me check.", "", [PARIS]),
    ("meetkai-functionary-medium-v3.2", "<|start_header_id|>assistant<|end_header_id|>\n\n>>>",
     'all\nHello there', "Hello there", "", []),
    # Command R7B
    ("CohereForAI-c4ai-command-r7b-12-2024-tool_use", "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
     '<|START_THINKING|>I will call the tool.<|END_THINKING|><|START_ACTION|>[\n    {"tool_call_id": "0", "tool_name": "get_weather", '
     '"parameters": {"location": "Paris"}}\n]<|END_ACTION|>', "", "I will call the tool.", [PARIS]),
    ("CohereForAI-c4ai-command-r7b-12-2024-tool_use", "<|CHATBOT_TOKEN|><|START_THINKING|><|END_THINKING|>",
     '<|START_RESPONSE|>It is sunny in Paris.<|END_RESPONSE|>', "It is sunny in Paris.", "", []),
    # Granite 3.3
    ("ibm-granite-granite-3.3-2B-Instruct", "",
     '<|tool_call|>[{"name": "get_weather", "arguments": {"location": "Paris"}}]', "", "", [PARIS]),
    ("ibm-granite-granite-3.3-2B-Instruct", "",
     '<think>Simple.</think><response>Hello!</response>', "Hello!", "Simple.", []),
    # FireFunction v2
    ("fireworks-ai-llama-3-firefunction-v2", "",
     ' functools[{"name": "get_weather", "arguments": {"location": "Paris"}}]', "", "", [PARIS]),
    # GPT-OSS (harmony)
    ("openai-gpt-oss-120b", "<|start|>assistant",
     '<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather '
     '<|constrain|>json<|message|>{"location": "Paris"}', "", "Need the weather.", [PARIS]),
    ("openai-gpt-oss-120b", "<|start|>assistant",
     '<|channel|>analysis<|message|>Think.<|end|><|start|>assistant to=functions.get_weather<|channel|>commentary json'
     '<|message|>{"location": "Paris"}<|call|>', "", "Think.", [PARIS]),
    ("openai-gpt-oss-120b", "<|start|>assistant",
     '<|channel|>analysis<|message|>Greet back.<|end|><|start|>assistant<|channel|>final<|message|>Hello!',
     "Hello!", "Greet back.", []),
    # Generic fallback (template without tool support)
    ("google-gemma-2-2b-it", "",
     '{"tool_call": {"name": "get_weather", "arguments": {"location": "Paris"}}}', "", "", [PARIS]),
    ("microsoft-Phi-3.5-mini-instruct", "",
     '{\n  "tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris"}}, {"name": "python", "arguments": {"code": "2"}}]\n}',
     "", "", [PARIS, ("python", {"code": "2"})]),
    ("google-gemma-2-2b-it", "", "Plain answer.", "Plain answer.", "", []),
    ("google-gemma-2-2b-it", "", '{"city": "Paris"}', '{"city": "Paris"}', "", []),
]


def _id(case):
    return f"{case[0]}:{case[2][:30]}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_family_output_streams_to_the_same_message(case):
    name, prompt, output, content, reasoning, expected = case
    fmt = detect_format(template_source(name))
    markers = [m for m in (*fmt.call_markers, *fmt.preserved_tokens) if m] + (["</tool_call>"] if expected else [])
    message, problems = check_streaming(fmt, output, TOOLS, markers=markers if expected else (), prompt=prompt)
    assert problems == []
    assert message.content == content
    assert message.reasoning_content == reasoning
    assert calls(message) == expected


@pytest.mark.parametrize("case", [c for c in CASES if c[5]], ids=[_id(c) for c in CASES if c[5]])
def test_arguments_stream_while_written(case):
    """With stream_arguments (grammar-constrained output) the same calls come out, in pieces."""
    name, prompt, output, content, reasoning, expected = case
    fmt = detect_format(template_source(name))
    message, problems = check_streaming(fmt, output, TOOLS, prompt=prompt, stream_arguments=True)
    assert calls(message) == expected and message.content == content and problems == []
    # char by char, arguments arrive in several fragments before the call is complete
    # (unless the model wrote them before the name, or as one JSON string: then they come whole)
    if '{"arguments"' not in output and '"arguments": "' not in output:
        deltas, _, _ = run(fmt, list(output), TOOLS, prompt=prompt, stream_arguments=True)
        fragments = [d for d in deltas if "tool_calls" in d and "id" not in d["tool_calls"][0]]
        assert len(fragments) > len(expected)


EXPECTED_FAMILY = {
    "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use": "hermes", "NousResearch-Hermes-3-Llama-3.1-8B-tool_use": "hermes",
    "Qwen-Qwen2.5-7B-Instruct": "hermes", "Qwen-Qwen3-0.6B": "hermes", "Qwen-QwQ-32B": "hermes",
    "ibm-granite-granite-4.0": "hermes", "Qwen3-Coder": "qwen3-coder", "Qwen3.5-4B": "qwen3-coder",
    "NVIDIA-Nemotron-3-Nano-30B-A3B-BF16": "qwen3-coder", "meta-llama-Llama-3.1-8B-Instruct": "llama3",
    "meta-llama-Llama-3.2-3B-Instruct": "llama3", "meta-llama-Llama-3.3-70B-Instruct": "llama3",
    "mistralai-Mistral-Nemo-Instruct-2407": "mistral-nemo", "Mistral-Small-3.2-24B-Instruct-2506": "mistral-small",
    "unsloth-mistral-Devstral-Small-2507": "mistral-small", "mistralai-Ministral-3-14B-Reasoning-2512": "mistral-small",
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B": "deepseek-r1", "deepseek-ai-DeepSeek-R1-Distill-Llama-8B": "deepseek-r1",
    "deepseek-ai-DeepSeek-V3.1": "deepseek-v3.1", "meetkai-functionary-medium-v3.1": "functionary-v3.1",
    "meetkai-functionary-medium-v3.2": "functionary-v3.2", "CohereForAI-c4ai-command-r7b-12-2024-tool_use": "command-r7b",
    "ibm-granite-granite-3.3-2B-Instruct": "granite", "fireworks-ai-llama-3-firefunction-v2": "firefunction-v2",
    "openai-gpt-oss-120b": "gpt-oss", "google-gemma-2-2b-it": "generic", "microsoft-Phi-3.5-mini-instruct": "generic",
    "ByteDance-Seed-OSS": "seed-oss", "MiniMax-M2": "minimax-m2", "GLM-4.6": "glm", "GLM-4.7-Flash": "glm",
    "poolside-Laguna-XS.2": "glm", "inclusionai-ling-3.0-flash": "glm", "Spark2.5": "glm",
    "NVIDIA-Nemotron-Nano-v2": "nemotron-v2", "unsloth-Apriel-1.5": "apriel", "Apriel-1.6-15b-Thinker-fixed": "apriel",
    "MiMo-VL": "hermes", "Reka-Edge": "hermes", "HuggingFaceTB-SmolLM3-3B": "generic",
}


@pytest.mark.parametrize("template,family", sorted(EXPECTED_FAMILY.items()))
def test_family_detected_from_template(template, family):
    fmt = detect_format(template_source(template))
    assert fmt.name == family
    assert fmt.native_tools == (family != "generic")


# --- malformed calls stay in content, and say why ---

MALFORMED = [
    ("Qwen-Qwen2.5-7B-Instruct", 'Hi <tool_call>\n{"name": "get_weather", "arguments": {"location": "Par\n</tool_call>', "invalid JSON"),
    ("Qwen-Qwen2.5-7B-Instruct", '<tool_call>\n{"name": "launch_rockets", "arguments": {}}\n</tool_call>', "unknown tool"),
    ("Qwen-Qwen2.5-7B-Instruct", '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}', "expected '</tool_call>'"),
    ("Qwen-Qwen2.5-7B-Instruct", '<tool_call>\n{"arguments": {"location": "Paris"}}\n</tool_call>', "without a name"),
    ("Qwen-Qwen2.5-7B-Instruct", '<tool_call>\n{"name": "get_weather", "arguments": [1]}\n</tool_call>', "must be a JSON object"),
    ("Qwen3-Coder", '<tool_call>\n<function=get_weather>\n<parameter=location>\nParis\n</parameter>\n', "expected"),
    ("meta-llama-Llama-3.1-8B-Instruct", '{"name": "get_weather", "parameters": {"location": "Paris"', "invalid JSON"),
    ("mistralai-Mistral-Nemo-Instruct-2407", '[TOOL_CALLS][{"name": "get_weather", "arguments": {"location": "Paris"}}', "expected"),
    ("deepseek-ai-DeepSeek-V3.1", DS["calls"] + DS["call"] + 'get_weather' + DS["sep"] + '{"location": }' + DS["call_end"], "invalid JSON"),
    ("meetkai-functionary-medium-v3.1", '<function=get_weather>{"location": "Paris"}', "expected '</function>'"),
    ("openai-gpt-oss-120b", '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"location": ', "invalid JSON"),
]


@pytest.mark.parametrize("template,output,reason", MALFORMED, ids=[f"{m[0]}:{m[2]}" for m in MALFORMED])
def test_malformed_call_stays_in_content(template, output, reason):
    fmt = detect_format(template_source(template))
    message, problems = check_streaming(fmt, output, TOOLS, prompt="<|start|>assistant" if fmt.name == "gpt-oss" else "")
    assert message.tool_calls == []
    assert len(problems) == 1 and reason in problems[0], problems
    # nothing of the output vanished: the call's text is all in content (whitespace around it aside)
    squeeze = lambda s: "".join(s.split())  # noqa: E731
    assert squeeze(output).endswith(squeeze(message.content).split("functions.")[-1][-20:])
    assert "get_weather" in message.content or "launch_rockets" in message.content or "arguments" in message.content


def test_malformed_text_keeps_every_character():
    fmt = detect_format(template_source("Qwen-Qwen2.5-7B-Instruct"))
    output = 'Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"location": "Par\n</tool_call>'
    message, problems = check_streaming(fmt, output, TOOLS)
    assert message.content == output and len(problems) == 1


def test_good_call_after_a_broken_one_is_still_parsed():
    fmt = detect_format(template_source("Qwen-Qwen2.5-7B-Instruct"))
    output = ('<tool_call>\n{"name": "get_weather", "arguments": {oops}}\n</tool_call>\n'
              '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool_call>')
    message, problems = check_streaming(fmt, output, TOOLS)
    assert calls(message) == [PARIS]
    assert message.content.startswith("<tool_call>") and "oops" in message.content
    assert len(problems) == 1


def test_streamed_call_that_breaks_keeps_what_was_sent():
    """stream_arguments trusts the grammar; if the text still breaks off, the call keeps what went out."""
    fmt = detect_format(template_source("Qwen-Qwen2.5-7B-Instruct"))
    output = '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Pa'
    chunks = [output[:40], output[40:]]
    deltas, message, problems = run(fmt, chunks, TOOLS, stream_arguments=True)
    assert assemble(deltas) == message
    assert [c.name for c in message.tool_calls] == ["get_weather"]
    assert message.tool_calls[0].arguments == '{"location": "Pa'
    assert len(problems) == 1


def test_no_tools_means_no_call_parsing():
    fmt = detect_format(template_source("Qwen-Qwen2.5-7B-Instruct"))
    output = '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool_call>'
    message, problems = check_streaming(fmt, output, None)
    assert message.content == output and message.tool_calls == [] and problems == []


def test_unknown_tool_in_function_v32_recipient_is_content():
    fmt = detect_format(template_source("meetkai-functionary-medium-v3.2"))
    message, problems = check_streaming(fmt, "weather_please\n{}", TOOLS, prompt=">>>")
    assert message.content == "weather_please\n{}" and "unknown tool" in problems[0]


def test_held_back_marker_prefix_is_released_when_it_is_not_a_marker():
    fmt = detect_format(template_source("Qwen-Qwen2.5-7B-Instruct"))
    parser = OutputParser(fmt, TOOLS, new_id=ids())
    assert parser.feed("a <tool") == [{"content": "a"}]
    assert parser.feed("box> b") == [{"content": " <toolbox> b"}]
    assert parser.finish()[0] == []


def test_content_before_call_is_sent_before_the_call_is_complete():
    fmt = detect_format(template_source("Qwen-Qwen2.5-7B-Instruct"))
    parser = OutputParser(fmt, TOOLS, new_id=ids())
    assert parser.feed("Let me check.\n<tool_call>\n{\"name\": ") == [{"content": "Let me check."}]
    assert parser.feed('"get_weather", "arguments": {"location": "Paris"}}') == []
    assert parser.feed("\n</tool_call>") == [
        {"tool_calls": [{"index": 0, "id": "id0", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"location": "Paris"}'}}]},
    ]
    deltas, message = parser.finish()
    assert deltas == [] and message.to_openai() == {
        "role": "assistant", "content": "Let me check.",
        "tool_calls": [{"id": "id0", "type": "function", "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}}],
    }


def test_message_shape_without_calls():
    fmt = detect_format(template_source("Qwen-Qwen3-0.6B"))
    message, _ = parse_output(fmt, "<think>hm</think>Hi", TOOLS)
    assert message.to_openai() == {"role": "assistant", "content": "Hi", "reasoning_content": "hm"}
    message, _ = parse_output(fmt, '<tool_call>{"name": "python", "arguments": {"code": "1"}}</tool_call>', TOOLS)
    assert message.to_openai()["content"] is None


def test_mistral_ids_are_nine_alphanumerics_and_history_ids_are_mapped():
    fmt = detect_format(template_source("mistralai-Mistral-Nemo-Instruct-2407"))
    message, _ = parse_output(fmt, '[TOOL_CALLS][{"name": "get_weather", "arguments": {"location": "Paris"}}]', TOOLS)
    cid = message.tool_calls[0].id
    assert len(cid) == 9 and cid.isalnum()
    history = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "call_abc", "type": "function", "function": {"name": "f", "arguments": {}}}]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "1"},
    ]
    msgs, _ = fmt.prepare_messages(history, TOOLS)
    new_id = msgs[1]["tool_calls"][0]["id"]
    assert len(new_id) == 9 and new_id.isalnum() and msgs[2]["tool_call_id"] == new_id
    assert history[1]["tool_calls"][0]["id"] == "call_abc"  # the request is not modified


def test_llama_builtin_tool_call():
    fmt = detect_format(template_source("meta-llama-Llama-3.1-8B-Instruct"))
    search = {"type": "function", "function": {"name": "brave_search", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}
    message, problems = check_streaming(fmt, '<|python_tag|>brave_search.call(query="weather in Paris")', [search])
    assert calls(message) == [("brave_search", {"query": "weather in Paris"})] and problems == []


def test_openai_wrapped_call_object():
    fmt = detect_format(template_source("Qwen-Qwen2.5-7B-Instruct"))
    out = '<tool_call>{"type": "function", "function": {"name": "get_weather", "arguments": {"location": "Paris"}}}</tool_call>'
    message, problems = check_streaming(fmt, out, TOOLS)
    assert calls(message) == [PARIS] and problems == []


def test_every_format_class_is_registered():
    assert set(FORMATS) >= {"hermes", "qwen3-coder", "llama3", "mistral-nemo", "mistral-small", "deepseek-r1",
                            "deepseek-v3.1", "functionary-v3.1", "functionary-v3.2", "command-r7b", "granite",
                            "firefunction-v2", "gpt-oss", "generic", "content", "seed-oss", "minimax-m2", "glm",
                            "nemotron-v2", "apriel"}


def test_arguments_are_a_json_object_string():
    fmt = detect_format(template_source("Qwen3-Coder"))
    out = '<tool_call>\n<function=calc>\n<parameter=a>\nnot a number\n</parameter>\n<parameter=note>\nnull\n</parameter>\n</function>\n</tool_call>'
    message, _ = check_streaming(fmt, out, TOOLS)
    # a value that does not parse as JSON stays a string; the schema decides nothing more
    assert json.loads(message.tool_calls[0].arguments) == {"a": "not a number", "note": "null"}


@pytest.mark.parametrize("template", sorted({c[0] for c in CASES}))
def test_random_text_keeps_the_streaming_rules(template):
    """Property: for any text (markers, JSON pieces and fragments of real outputs shuffled), parsing never
    fails, deltas assemble to the message, and how the text was split changes nothing."""
    import random

    from tests.unit.chat_output_helpers import splits

    rng = random.Random(template)
    fmt = detect_format(template_source(template))
    frags = ['{', '}', '[', ']', '"', ':', ',', ' ', '\n', 'get_weather', '"name"', '"arguments"', '"location"', '"Paris"',
             '<think>', '</think>', 'hello', '\\', '1', '>>>', 'all\n', *fmt.call_markers, *fmt.preserved_tokens,
             *fmt.strip_markers]
    for c in CASES:
        if c[0] == template:
            frags += [c[2][a:a + n] for a, n in ((rng.randrange(len(c[2])), rng.randint(1, 40)) for _ in range(6))]
    for i in range(30):
        text = "".join(rng.choice(frags) for _ in range(rng.randint(1, 12)))
        prompt = rng.choice(["", "<think>\n", ">>>", "<|start|>assistant"])
        _, whole, problems = run(fmt, [text], TOOLS, prompt=prompt)
        for chunks in list(splits(text, seed=i, n_random=3))[:: max(1, len(text) // 8)]:
            deltas, message, probs = run(fmt, chunks, TOOLS, prompt=prompt)
            assert assemble(deltas) == message and message == whole and probs == problems, (text, chunks)
            deltas, message, _ = run(fmt, chunks, TOOLS, prompt=prompt, stream_arguments=True)
            assert assemble(deltas) == message, (text, chunks)
