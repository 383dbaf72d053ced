"""Tool-call grammars per family: they accept the calls the parsers read, lazily from the family's trigger."""

from __future__ import annotations

import re

import pytest

from llamaserve.chat.formats import detect_format
from llamaserve.chat.output import parse_output
from llamaserve.chat.tool_grammar import GrammarBuilder, literal, rename_rules
from llamaserve.grammar import schema_to_gbnf
from tests.helpers import CALC, CANONICAL, DS_B, DS_CB, DS_CE, DS_E, DS_S, PARIS, TOOLS, WEATHER, template_source
from tests.unit.chat_output_helpers import calls
from tests.unit.gbnf_tools import Matcher


def _fmt(name):
    return detect_format(template_source(name))


@pytest.mark.parametrize("name,prompt,call,before", CANONICAL, ids=[c[0] for c in CANONICAL])
def test_required_grammar_accepts_the_call_and_the_parser_reads_it(name, prompt, call, before):
    fmt = _fmt(name)
    g = fmt.grammar(TOOLS, schema_to_gbnf, required=True, prompt=prompt)
    assert not g.lazy and g.triggers == ()
    grammar = Matcher(g.gbnf)
    assert grammar(call), g.gbnf
    message, problems = parse_output(fmt, call, TOOLS, prompt=prompt)
    assert calls(message) == [PARIS] and problems == []
    # a tool that was not offered is not accepted, nor is plain text
    assert not grammar(call.replace("get_weather", "get_wether"))
    assert not grammar("Hello there")


@pytest.mark.parametrize("name,prompt,call,before", CANONICAL, ids=[c[0] for c in CANONICAL])
def test_lazy_grammar_engages_at_the_trigger(name, prompt, call, before):
    fmt = _fmt(name)
    g = fmt.grammar(TOOLS, schema_to_gbnf, required=False, prompt=prompt)
    assert g.lazy and g.triggers
    output = before + call
    start = _trigger_start(g, output)
    assert start is not None, (g.triggers, output)
    assert start >= len(before) - 1  # (a marker may take the space before it, as " functools[" does)
    assert Matcher(g.gbnf)(output[start:]), (output[start:], g.gbnf)
    # text without a call never triggers
    assert _trigger_start(g, before + "It is sunny, no tool needed.") is None
    message, problems = parse_output(fmt, output, TOOLS, prompt=prompt)
    assert calls(message) == [PARIS] and problems == []


def _trigger_start(g, text):
    """Where libllama's lazy grammar would start: a word's position, or a pattern's first group."""
    best = None
    for t in g.triggers:
        if t.kind == "word":
            at = text.find(t.value)
        else:
            m = re.search(t.value, text)
            at = -1 if m is None else next((m.start(i) for i in range(1, (m.lastindex or 0) + 1) if m.group(i)), m.start())
        if at >= 0 and (best is None or at < best):
            best = at
    return best


@pytest.mark.parametrize("name", ["Qwen-Qwen2.5-7B-Instruct", "mistralai-Mistral-Nemo-Instruct-2407", "deepseek-ai-DeepSeek-V3.1",
                                  "CohereForAI-c4ai-command-r7b-12-2024-tool_use", "google-gemma-2-2b-it", "Qwen3-Coder"])
def test_parallel_calls_only_when_allowed(name):
    fmt = _fmt(name)
    two = {
        "Qwen-Qwen2.5-7B-Instruct": '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool_call>\n'
                                    '<tool_call>\n{"name": "calc", "arguments": {"a": 1, "op": "add"}}\n</tool_call>',
        "mistralai-Mistral-Nemo-Instruct-2407": '[TOOL_CALLS][{"name": "get_weather", "arguments": {"location": "Paris"}, "id": "a1b2c3d4e"}, '
                                                '{"name": "calc", "arguments": {"a": 1}, "id": "b1b2c3d4e"}]',
        "deepseek-ai-DeepSeek-V3.1": DS_B + DS_CB + 'get_weather' + DS_S + '{"location": "Paris"}' + DS_CE
                                     + DS_CB + 'calc' + DS_S + '{"a": 1}' + DS_CE + DS_E,
        "CohereForAI-c4ai-command-r7b-12-2024-tool_use":
            '<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "get_weather", "parameters": {"location": "Paris"}}, '
            '{"tool_call_id": "1", "tool_name": "calc", "parameters": {"a": 1}}]<|END_ACTION|>',
        "google-gemma-2-2b-it": '{"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris"}}, '
                                '{"name": "calc", "arguments": {"a": 1}}]}',
        "Qwen3-Coder": '<tool_call>\n<function=get_weather>\n<parameter=location>\nParis\n</parameter>\n</function>\n</tool_call>\n'
                       '<tool_call>\n<function=calc>\n<parameter=a>\n1\n</parameter>\n</function>\n</tool_call>',
    }[name]
    parallel = Matcher(fmt.grammar(TOOLS, schema_to_gbnf, required=True, parallel=True).gbnf)
    single = Matcher(fmt.grammar(TOOLS, schema_to_gbnf, required=True, parallel=False).gbnf)
    one = CANONICAL_BY_NAME.get(name, CANONICAL_BY_NAME["Qwen-Qwen3-0.6B"])
    assert parallel(two) and parallel(one)
    assert single(one) and not single(two)
    message, problems = parse_output(fmt, two, TOOLS)
    assert [c[0] for c in calls(message)] == ["get_weather", "calc"] and problems == []


CANONICAL_BY_NAME = {c[0]: c[2] for c in CANONICAL}


def test_required_grammar_lets_a_thinking_model_think_first():
    fmt = _fmt("Qwen-Qwen3-0.6B")
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool_call>'
    g = Matcher(fmt.grammar(TOOLS, schema_to_gbnf, required=True).gbnf)
    assert g(call) and g("<think>\nWeather, so the tool.\n</think>\n\n" + call)
    assert not g("<think>never closed " + call)
    # the prompt opened the block (QwQ): the output must close it before calling
    fmt = _fmt("Qwen-QwQ-32B")
    g = Matcher(fmt.grammar(TOOLS, schema_to_gbnf, required=True, prompt="<|im_start|>assistant\n<think>\n").gbnf)
    assert g("Weather.\n</think>\n\n" + call) and not g(call)


def test_qwen3_coder_grammar_follows_each_parameter_schema():
    fmt = _fmt("Qwen3-Coder")
    g = Matcher(fmt.grammar([CALC], schema_to_gbnf, required=True).gbnf)
    ok = '<tool_call>\n<function=calc>\n<parameter=a>\n12\n</parameter>\n<parameter=op>\nmul\n</parameter>\n</function>\n</tool_call>'
    assert g(ok)
    assert g(ok.replace('<parameter=op>\nmul\n</parameter>\n', ""))  # op is optional
    assert not g(ok.replace("mul", "div"))  # op is one of its enum's values, written raw
    assert not g(ok.replace("12", "twelve"))  # a is an integer
    assert not g(ok.replace('<parameter=a>\n12\n</parameter>\n', ""))  # a is required


def test_gpt_oss_required_call_may_follow_its_analysis():
    fmt = _fmt("openai-gpt-oss-120b")
    g = Matcher(fmt.grammar(TOOLS, schema_to_gbnf, required=True, prompt="<|start|>assistant").gbnf)
    call = '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"location": "Paris"}'
    assert g(call)
    assert g("<|channel|>analysis<|message|>Think.<|end|><|start|>assistant" + call)


def test_grammar_needs_tools():
    with pytest.raises(ValueError):
        _fmt("Qwen-Qwen2.5-7B-Instruct").grammar([], schema_to_gbnf, required=True)


def test_schema_errors_propagate():
    class SchemaError(ValueError):
        pass

    def failing(schema):
        raise SchemaError("unsupported keyword")

    with pytest.raises(SchemaError):
        _fmt("Qwen-Qwen2.5-7B-Instruct").grammar(TOOLS, failing, required=True)


def test_rename_rules_leaves_literals_classes_and_bounds_alone():
    src = 'root ::= item{2,3} "root ::= x" [a-z0-9] # root comment\nitem ::= "\\"" root-2?\n'
    assert rename_rules(src, "p-") == 'p-root ::= p-item{2,3} "root ::= x" [a-z0-9] # root comment\np-item ::= "\\"" p-root-2?\n'


def test_literal_escapes():
    assert literal('a"b\\c\nd\te\x01') == '"a\\"b\\\\c\\nd\\te\\x01"'
    g = Matcher("root ::= " + literal('say "hi"\n\\o/ ｜tool▁sep｜') + "\n")
    assert g('say "hi"\n\\o/ ｜tool▁sep｜')


def test_until_rule():
    b = GrammarBuilder(schema_to_gbnf)
    rule = b.until("</p>")
    assert b.until("</p>") == rule  # one rule per stop string
    b.add("root", f'{rule} "</p>"')
    g = Matcher(b.text())
    assert g("text with < and </ and </x></p>") and not g("one</p>two</p>")


def test_each_schema_is_converted_once():
    seen = []

    def counting(schema):
        seen.append(schema)
        return schema_to_gbnf(schema)

    same = {"type": "function", "function": {**WEATHER["function"], "name": "get_weather_2"}}
    _fmt("Qwen-Qwen2.5-7B-Instruct").grammar([WEATHER, same], counting, required=True)
    assert len(seen) == 1
