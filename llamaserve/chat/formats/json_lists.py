"""Families that write their calls as a JSON list after a marker: Granite 3.x, Nemotron Nano v2, Apriel
(`JsonListCalls`), Command R7B (<|START_ACTION|>[...], tool_name/parameters) and FireFunction v2 (functools[...]).
"""

from __future__ import annotations

from llamaserve.chat.formats.base import ChatFormat, alts
from llamaserve.chat.tool_grammar import Trigger, literal


class CommandR7B(ChatFormat):
    """Command R7B: <|START_THINKING|>...<|END_THINKING|>, <|START_ACTION|>[{"tool_call_id", "tool_name", "parameters"}]<|END_ACTION|>."""

    name = "command-r7b"
    reasoning_start, reasoning_end = "<|START_THINKING|>", "<|END_THINKING|>"
    call_markers = ("<|START_ACTION|>",)
    strip_markers = ("<|START_RESPONSE|>", "<|END_RESPONSE|>")
    preserved_tokens = ("<|START_ACTION|>", "<|END_ACTION|>", "<|START_RESPONSE|>", "<|END_RESPONSE|>",
                        "<|START_THINKING|>", "<|END_THINKING|>")

    def section(self, p, marker):
        yield from p.call_array(name_keys=("tool_name",), args_keys=("parameters",))
        yield from p.skip_ws()
        if not (p.eof and not p.rest()):  # the end marker may be cut off by the end of generation
            yield from p.expect("<|END_ACTION|>")

    def _calls_rule(self, b, fns, parallel):
        ws = b.ws()
        extra = f'"\\"tool_call_id\\"" {ws} ":" {ws} "\\"" [0-9]{{1,3}} "\\"" {ws} "," {ws} '
        one = b.add("call", alts([self._json_call(b, fn, "tool_name", "parameters", extra) for fn in fns]))
        inner = f'{one} ( {ws} "," {ws} {one} )*' if parallel else one
        return f'"<|START_ACTION|>" {ws} "[" {ws} {inner} {ws} "]" {ws} "<|END_ACTION|>"'


class JsonListCalls(ChatFormat):
    """A marker, then the calls as a JSON array of {"name": ..., "arguments": ...} (and an optional closing marker)."""

    open_marker = ""
    close_marker: str | None = None

    @property
    def call_markers(self):  # type: ignore[override]
        return (self.open_marker,)

    def section(self, p, marker):
        yield from p.call_array()
        if self.close_marker:
            yield from p.expect(self.close_marker)

    def _calls_rule(self, b, fns, parallel):
        ws = b.ws()
        one = b.add("call", alts([self._json_call(b, fn) for fn in fns]))
        inner = f'{one} ( {ws} "," {ws} {one} )*' if parallel else one
        close = f" {ws} {literal(self.close_marker)}" if self.close_marker else ""
        return f'{literal(self.open_marker)} {ws} "[" {ws} {inner} {ws} "]"{close}'


class Granite(JsonListCalls):
    """Granite 3.x: <|tool_call|>[{"name": ..., "arguments": ...}]; thoughts in <think>, the answer in <response>."""

    name = "granite"
    open_marker = "<|tool_call|>"
    strip_markers = ("<response>", "</response>")
    preserved_tokens = ("<|tool_call|>", "<think>", "</think>", "<response>", "</response>")


class NemotronV2(JsonListCalls):
    """NVIDIA Nemotron Nano v2: <TOOLCALL>[{"name": ..., "arguments": ...}]</TOOLCALL>."""

    name = "nemotron-v2"
    open_marker, close_marker = "<TOOLCALL>", "</TOOLCALL>"
    preserved_tokens = ("<TOOLCALL>", "</TOOLCALL>", "<think>", "</think>")


class Apriel(JsonListCalls):
    """Apriel 1.5 / 1.6: <tool_calls>[...]</tool_calls>; thoughts from "Here are my reasoning steps:" to [BEGIN FINAL RESPONSE]."""

    name = "apriel"
    open_marker, close_marker = "<tool_calls>", "</tool_calls>"
    reasoning_start, reasoning_end = "Here are my reasoning steps:", "[BEGIN FINAL RESPONSE]"
    strip_markers = ("[END FINAL RESPONSE]", "<|end|>")


class FireFunctionV2(ChatFormat):
    """FireFunction v2: functools[{"name": ..., "arguments": ...}, ...]."""

    name = "firefunction-v2"
    call_markers = ("functools[",)
    reasoning_start = reasoning_end = None

    def section(self, p, marker):
        yield from p.call_array(opened=True)

    def _calls_rule(self, b, fns, parallel):
        ws = b.ws()
        one = b.add("call", alts([self._json_call(b, fn) for fn in fns]))
        inner = f'{one} ( {ws} "," {ws} {one} )*' if parallel else one
        return f'" functools[" {ws} {inner} {ws} "]"'

    def _triggers(self, fns):
        return [Trigger("word", " functools[")]
