"""GPT-OSS (harmony): messages on channels (analysis: thoughts; final / commentary: content) and calls addressed
to=functions.NAME.
"""

from __future__ import annotations

import re

from llamaserve.chat.formats.base import ChatFormat, alts, tool_functions
from llamaserve.chat.output import Cursor, ReasoningMode, Step
from llamaserve.chat.tool_grammar import GrammarBuilder, ToolGrammar, Trigger, literal, tool_parameters

_H_START = "<|start|>assistant"


class GptOss(ChatFormat):
    """GPT-OSS (harmony): channels analysis (thoughts), final / commentary (content), and calls to=functions.NAME."""

    name = "gpt-oss"
    reasoning_start = reasoning_end = None
    preserved_tokens = ("<|channel|>", "<|constrain|>", "<|message|>", "<|start|>", "<|end|>")

    def __init__(self, source: str = ""):
        super().__init__(source)
        self.supports_reasoning = True

    def thinking_open(self, prompt):
        return False

    @property
    def reasoning_close(self):
        return "<|end|><|start|>assistant<|channel|>final<|message|>"

    def reasoning(self, p):
        return
        yield  # pragma: no cover

    def plain_body(self, p, at_start):
        yield from self._messages(p, at_start, calls=False)

    def body(self, p, at_start, prompt):
        yield from self._messages(p, at_start, calls=True)

    def _messages(self, p: Cursor, at_start: bool, calls: bool) -> Step:
        raw = p.mode == ReasoningMode.RAW
        if not at_start:  # after a rejected header: plain text up to the next message
            m = yield from p.text_until((_H_START,), drop_ws=False)
            if m is None:
                return
            if raw:
                p.emit("content", m)
        while True:
            head = yield from p.peek_any(("<|channel|>", " to=", "<|constrain|>"))
            if head is None:
                m = yield from p.text_until((_H_START,), drop_ws=False)
                if m is None:
                    return
                if raw:
                    p.emit("content", m)
                continue
            start = p.pos
            p.open_section(start=start, resume=start)
            header, _ = yield from p.read_until(("<|message|>",), max_len=512)
            channel = re.search(r"<\|channel\|>\s*(\w+)", header)
            recipient = re.search(r"to=([^\s<]+)", header)
            target = recipient.group(1) if recipient else ""
            name = target[len("functions."):] if target.startswith("functions.") else target
            if calls and name and (name in p.tools or target.startswith("functions.")):
                p.start_call(name)
                yield from p.call_arguments()
                p.end_call()
                p.commit()
                yield from p.skip_ws()
                end = yield from p.peek_any(("<|call|>", "<|end|>"))
                if end:
                    p.pos += len(end)
            else:
                p.commit()
                kind = "reasoning" if channel and channel.group(1) == "analysis" else "content"
                if raw:
                    p.emit("content", p.text[start:p.pos])
                    kind = "content"
                elif kind == "reasoning" and p.mode == ReasoningMode.INLINE:
                    p.emit("content", "<think>")
                    kind = "inline"
                end = yield from p.text_until(("<|end|>", "<|return|>", "<|call|>", _H_START),
                                              kind="content" if kind == "inline" else kind,
                                              drop_ws=not raw, trim_end=kind == "reasoning")
                if kind == "inline":
                    p.emit("content", "</think>")
                if raw and end:
                    p.emit("content", end)
                if end == _H_START:
                    continue
                if end is None:
                    return
            nxt = yield from p.peek_any((_H_START,), skip_ws=True)
            if nxt is None:
                if p.eof and not p.rest().strip():
                    return
                m = yield from p.text_until((_H_START,), drop_ws=False)
                if m is None:
                    return
                if raw:
                    p.emit("content", m)
                continue
            yield from p.skip_ws()
            p.pos += len(nxt)
            if raw:
                p.emit("content", nxt)

    def _calls_rule(self, b, fns, parallel):
        ws = b.ws()
        tail = f'{ws} ( "<|channel|>" ( "commentary" | "analysis" ) )? {ws} "<|constrain|>"? "json"? "<|message|>"'
        calls = [f'{literal(fn["name"])} {tail} {b.schema(tool_parameters(fn))}' for fn in fns]
        return b.add("call", f'" to=functions." {alts(calls)}')

    def grammar(self, tools, schema_to_gbnf, *, required, parallel=True, prompt=""):
        g = super().grammar(tools, schema_to_gbnf, required=required, parallel=parallel, prompt=prompt)
        if not required:
            return g
        # a required call may still be preceded by thoughts, and is then its own message
        b = GrammarBuilder(schema_to_gbnf)
        call = self._calls_rule(b, tool_functions(tools), parallel)
        thoughts = f'"<|channel|>analysis<|message|>" {b.until("<|end|>")} "<|end|>" "{_H_START}"'
        b.add("root", f'( {thoughts} )? "<|channel|>commentary"? {call}')
        return ToolGrammar(b.text(), lazy=False)

    def _triggers(self, fns):
        return [Trigger("word", " to=functions.")]
