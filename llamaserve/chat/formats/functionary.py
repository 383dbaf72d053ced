"""Functionary v3.1 (<function=NAME>{...}</function>, <|python_tag|>) and v3.2 (>>>NAME recipient lines)."""

from __future__ import annotations

import re

from llamaserve.chat.formats.base import ChatFormat, alts
from llamaserve.chat.formats.llama3 import python_tag_call
from llamaserve.chat.output import Cursor, Step
from llamaserve.chat.tool_grammar import Trigger, literal, tool_parameters


class FunctionaryV31(ChatFormat):
    """Functionary v3.1 (Llama 3.1): <function=NAME>{...}</function>, and <|python_tag|> code."""

    name = "functionary-v3.1"
    call_markers = ("<function=", "<|python_tag|>")
    preserved_tokens = ("<|python_tag|>",)
    additional_stops = ("<|eom_id|>",)
    reasoning_start = reasoning_end = None

    def section(self, p, marker):
        if marker == "<|python_tag|>":
            yield from python_tag_call(p)
            return
        name, _ = yield from p.read_until((">",), max_len=128)
        p.start_call(name.strip())
        yield from p.call_arguments()
        p.end_call()
        yield from p.expect("</function>")

    def _calls_rule(self, b, fns, parallel):
        calls = [f'"<function=" {literal(fn["name"])} ">" {b.schema(tool_parameters(fn))} "</function>"' for fn in fns]
        return self._repeat(b, "call", alts(calls), b.ws(), parallel)

    def _triggers(self, fns):
        return [Trigger("word", "<function=")]


class FunctionaryV32(ChatFormat):
    """Functionary v3.2: recipient lines, >>>all\\ntext or >>>NAME\\n{...} (the prompt ends with the first >>>)."""

    name = "functionary-v3.2"
    call_markers = (">>>",)
    reasoning_start = reasoning_end = None

    def body(self, p, at_start, prompt):
        if at_start and prompt.endswith(">>>"):
            yield from self._message(p, p.pos)
        while True:
            m = yield from p.text_until((">>>",))
            if m is None:
                return
            yield from self._message(p, p.marker_start)

    def _message(self, p: Cursor, start: int) -> Step:
        p.open_section(start=start, resume=p.pos)
        recipient, _ = yield from p.read_until(("\n",), max_len=128)
        recipient = recipient.strip()
        if recipient == "all":
            p.commit()
            return
        p.start_call(recipient)
        if recipient == "python" and not (yield from p.peek_any(("{",), skip_ws=True)):
            p.args('{"code": "')
            yield from p.stream_json_string((">>>",), consume=False)
            p.args('"}')
        else:
            yield from p.call_arguments()
        p.end_call()
        p.commit()
        yield from p.skip_ws()

    def _calls_rule(self, b, fns, parallel):
        calls = [f'{literal(fn["name"])} "\\n" {b.schema(tool_parameters(fn))}' for fn in fns]
        return self._repeat(b, "call", alts(calls), '">>>"', parallel)

    def _triggers(self, fns):
        names = "|".join(re.escape(fn["name"]) for fn in fns)
        return [Trigger("pattern", f"^((?:{names})\\n)"), Trigger("pattern", f">>>((?:{names})\\n)")]
