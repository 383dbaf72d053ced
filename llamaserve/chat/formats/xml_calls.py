"""Families that write calls as XML, one element per parameter with the value as raw text typed by the tool's
schema: Qwen3-Coder, Seed-OSS, MiniMax M2 (`XmlCalls`), and GLM's <arg_key>/<arg_value> pairs.
"""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

from llamaserve.chat.formats.base import ChatFormat, Tool, alts
from llamaserve.chat.output import Cursor, Malformed, Step
from llamaserve.chat.tool_grammar import GrammarBuilder, literal, tool_parameters


class XmlCalls(ChatFormat):
    """Calls as XML with one element per parameter; values are raw text, typed by the tool's schema."""

    section_open, section_close = "<tool_call>", "</tool_call>"
    fn_open, fn_open_end, fn_close = "<function=", ">", "</function>"
    param_open, param_open_end, param_close = "<parameter=", ">", "</parameter>"
    newlines = True  # the family writes each tag and value on its own line

    @property
    def call_markers(self):  # type: ignore[override]
        return (self.section_open,)

    def section(self, p, marker):
        while True:
            yield from p.expect(self.fn_open)
            yield from self._function(p)
            yield from p.skip_ws()
            nxt = yield from p.peek_any((self.fn_open, self.section_close))
            if nxt is None:
                raise Malformed(f"expected {self.fn_open} or {self.section_close}")
            if nxt == self.section_close:
                p.pos += len(nxt)
                return

    def _function(self, p: Cursor) -> Step:
        name, _ = yield from p.read_until((self.fn_open_end,), max_len=128)
        name = name.strip()
        p.start_call(name)
        props = tool_parameters(p.tools.get(name, {})).get("properties") or {}
        value_ends = (self.param_close, self.param_open, self.fn_close)
        first = True
        while True:
            yield from p.skip_ws()
            which = yield from p.peek_any((self.param_open, self.fn_close))
            if which is None:
                raise Malformed(f"expected {self.param_open}...{self.param_open_end} or {self.fn_close}")
            p.pos += len(which)
            if which == self.fn_close:
                break
            pname, _ = yield from p.read_until((self.param_open_end,), max_len=128)
            first = yield from _xml_argument(p, pname.strip(), props, value_ends, first)
            yield from p.accept(self.param_close, skip_ws=False)
        p.args("{}" if first else "}")
        p.end_call()

    def _calls_rule(self, b, fns, parallel):
        ws = b.ws()
        nl = '"\\n"' if self.newlines else '""'
        calls = []
        for i, fn in enumerate(fns):
            params = []
            for pname, pschema, required in _parameters(fn):
                value = _xml_value_rule(b, pschema, self.param_close, self.newlines)
                rule = b.add(f"param-{i}-{len(params)}", f"{literal(self.param_open + pname + self.param_open_end)} {value} "
                                                         f"{literal(self.param_close)} {ws}")
                params.append(rule if required else rule + "?")
            calls.append(f"{literal(self.fn_open + fn['name'] + self.fn_open_end)} {ws} {' '.join(params)} {literal(self.fn_close)}")
        one = f"{literal(self.section_open)} {nl} {alts(calls)} {ws} {literal(self.section_close)}"
        return self._repeat(b, "call", one, ws, parallel)


class Qwen3Coder(XmlCalls):
    """Qwen3-Coder, Qwen3.5, Nemotron 3 Nano, StepFun: <tool_call><function=NAME><parameter=P>value</parameter></function></tool_call>."""

    name = "qwen3-coder"
    preserved_tokens = ("<tool_call>", "</tool_call>", "<think>", "</think>")


class SeedOss(XmlCalls):
    """ByteDance Seed-OSS: <seed:tool_call><function=NAME><parameter=P>value</parameter></function></seed:tool_call>, <seed:think>."""

    name = "seed-oss"
    reasoning_start, reasoning_end = "<seed:think>", "</seed:think>"
    section_open, section_close = "<seed:tool_call>", "</seed:tool_call>"
    newlines = False
    preserved_tokens = ("<seed:tool_call>", "</seed:tool_call>", "<seed:think>", "</seed:think>")


class MiniMaxM2(XmlCalls):
    """MiniMax M2: <minimax:tool_call><invoke name="NAME"><parameter name="P">value</parameter></invoke></minimax:tool_call>."""

    name = "minimax-m2"
    section_open, section_close = "<minimax:tool_call>", "</minimax:tool_call>"
    fn_open, fn_open_end, fn_close = '<invoke name="', '">', "</invoke>"
    param_open, param_open_end = '<parameter name="', '">'
    newlines = False
    preserved_tokens = ("<minimax:tool_call>", "</minimax:tool_call>", "<think>", "</think>")


class GlmCalls(ChatFormat):
    """GLM 4.5 / 4.6 / 4.7, Laguna, Ling 3, Spark: <tool_call>NAME<arg_key>k</arg_key><arg_value>v</arg_value></tool_call>."""

    name = "glm"
    call_markers = ("<tool_call>",)
    preserved_tokens = ("<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>",
                        "<think>", "</think>")

    def __init__(self, source: str = ""):
        super().__init__(source)
        # GLM 4.5 / 4.6 put each tag on its own line, 4.7 writes them together
        self.newlines = bool(re.search(r"</arg_key>(\n|\\n)", source))

    def section(self, p, marker):
        name, _ = yield from p.read_until(("\n", "<arg_key>", "</tool_call>"), max_len=128, consume=False)
        name = name.strip()
        p.start_call(name)
        props = tool_parameters(p.tools.get(name, {})).get("properties") or {}
        first = True
        while True:
            yield from p.skip_ws()
            which = yield from p.peek_any(("<arg_key>", "</tool_call>"))
            if which is None:
                raise Malformed("expected <arg_key> or </tool_call>")
            p.pos += len(which)
            if which == "</tool_call>":
                break
            key, _ = yield from p.read_until(("</arg_key>",), max_len=128)
            yield from p.expect("<arg_value>")
            first = yield from _xml_argument(p, key.strip(), props, ("</arg_value>",), first)
            yield from p.expect("</arg_value>", skip_ws=False)
        p.args("{}" if first else "}")
        p.end_call()

    def _calls_rule(self, b, fns, parallel):
        ws = b.ws()
        nl = '"\\n"' if self.newlines else '""'
        calls = []
        for i, fn in enumerate(fns):
            params = []
            for pname, pschema, required in _parameters(fn):
                value = _xml_value_rule(b, pschema, "</arg_value>", False)
                rule = b.add(f"arg-{i}-{len(params)}", f'{literal("<arg_key>" + pname + "</arg_key>")} {nl} "<arg_value>" '
                                                       f'{value} "</arg_value>" {nl}')
                params.append(rule if required else rule + "?")
            calls.append(f"{literal(fn['name'])} {nl} {' '.join(params)}")
        return self._repeat(b, "call", f'"<tool_call>" {alts(calls)} "</tool_call>"', ws, parallel)


def _parameters(fn: Tool) -> list[tuple[str, Any, bool]]:
    schema = tool_parameters(fn)
    required = set(schema.get("required") or ())
    return [(k, v if isinstance(v, dict) else {}, k in required) for k, v in (schema.get("properties") or {}).items()]


def _xml_argument(p: Cursor, name: str, props: dict[str, Any], ends: Sequence[str], first: bool) -> Step:
    """One argument written as raw text up to one of `ends`, into the arguments JSON; returns False (not first any more)."""
    p.args(("{" if first else ", ") + json.dumps(name, ensure_ascii=False) + ": ")
    if _is_string_schema(props.get(name)):
        p.args('"')
        yield from p.stream_json_string(ends, consume=False, strip_newline=True)
        p.args('"')
    else:
        raw, _ = yield from p.read_until(ends, max_len=1 << 30, consume=False)
        p.args(json.dumps(_xml_value(raw, props.get(name)), ensure_ascii=False))
    return False


def _xml_value_rule(b: GrammarBuilder, schema: Any, close: str, newlines: bool) -> str:
    nl = '"\\n"' if newlines else ""
    if _is_string_schema(schema):
        if isinstance(schema.get("enum"), list):
            return f"{nl} {alts([literal(v) for v in schema['enum']])} {nl}"
        return b.until(close)
    ws = b.ws()
    return f"{ws} {b.schema(schema)} {ws}"


def _is_string_schema(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    t = schema.get("type")
    if t == "string":
        return True
    if isinstance(t, list):
        return "string" in t and not ({"object", "array", "number", "integer", "boolean"} & set(t))
    if t is None and "enum" in schema:
        return all(isinstance(v, str) for v in schema["enum"])
    return False


def _xml_value(raw: str, schema: Any) -> Any:
    """A non-string parameter value written as text: JSON if it parses, else the text itself."""
    if raw.startswith("\n"):
        raw = raw[1:]
    if raw.endswith("\n"):
        raw = raw[:-1]
    try:
        return json.loads(raw)
    except ValueError:
        return raw
