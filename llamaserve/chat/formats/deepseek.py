"""DeepSeek R1 (and V3-0324) and V3.1: calls between <｜tool▁calls▁begin｜> and <｜tool▁calls▁end｜>."""

from __future__ import annotations

from llamaserve.chat.formats.base import ChatFormat, Tool, alts
from llamaserve.chat.output import Malformed
from llamaserve.chat.tool_grammar import GrammarBuilder, Trigger, literal, tool_parameters

DS_CALLS_BEGIN = "<｜tool▁calls▁begin｜>"
DS_CALLS_END = "<｜tool▁calls▁end｜>"
DS_CALL_BEGIN = "<｜tool▁call▁begin｜>"
DS_CALL_END = "<｜tool▁call▁end｜>"
DS_SEP = "<｜tool▁sep｜>"


class DeepSeekR1(ChatFormat):
    """DeepSeek R1 (and V3-0324): <｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\\n```json\\n{...}\\n```<｜tool▁call▁end｜>."""

    name = "deepseek-r1"
    call_markers = (DS_CALLS_BEGIN, DS_CALL_BEGIN)
    preserved_tokens = (DS_CALLS_BEGIN, DS_CALLS_END, DS_CALL_BEGIN, DS_CALL_END, DS_SEP, "<think>", "</think>")

    def section(self, p, marker):
        opened = marker == DS_CALL_BEGIN
        while True:
            if not opened:
                yield from p.expect(DS_CALL_BEGIN)
            opened = False
            head, _ = yield from p.read_until((DS_SEP,), max_len=128)
            if head.strip() == "function":  # R1: the type, then the name on its own line
                name, _ = yield from p.read_until(("\n", "```"), max_len=128, consume=False)
                p.start_call(name.strip())
            else:  # V3.1: the name, then the arguments
                p.start_call(head.strip())
            fenced = yield from p.accept("```json")
            yield from p.call_arguments()
            if fenced:
                yield from p.expect("```")
            p.end_call()
            yield from p.expect(DS_CALL_END)
            yield from p.skip_ws()
            nxt = yield from p.peek_any((DS_CALL_BEGIN, DS_CALLS_END))
            if nxt == DS_CALLS_END:
                p.pos += len(nxt)
                return
            if nxt is None:
                if p.eof and not p.rest():  # the closing marker may be cut off by the end of generation
                    return
                raise Malformed(f"expected {DS_CALL_BEGIN} or {DS_CALLS_END}")

    def example_call(self, name, arguments):
        return f"{DS_CALLS_BEGIN}{DS_CALL_BEGIN}function{DS_SEP}{name}\n```json\n{arguments}\n```{DS_CALL_END}{DS_CALLS_END}"

    def _one_call(self, b: GrammarBuilder, fn: Tool) -> str:
        return (f'"{DS_CALL_BEGIN}function{DS_SEP}" {literal(fn["name"])} "\\n```json\\n" '
                f'{b.schema(tool_parameters(fn))} "\\n```{DS_CALL_END}"')

    def _calls_rule(self, b, fns, parallel):
        one = b.add("call", alts([self._one_call(b, fn) for fn in fns]))
        inner = f'{one} ( "\\n"? {one} )*' if parallel else one
        return f'"{DS_CALLS_BEGIN}" {inner} "{DS_CALLS_END}"'

    def _triggers(self, fns):
        return [Trigger("word", DS_CALLS_BEGIN)]


class DeepSeekV31(DeepSeekR1):
    """DeepSeek V3.1: <｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{...}<｜tool▁call▁end｜>."""

    name = "deepseek-v3.1"

    def example_call(self, name, arguments):
        return f"{DS_CALLS_BEGIN}{DS_CALL_BEGIN}{name}{DS_SEP}{arguments}{DS_CALL_END}{DS_CALLS_END}"

    def _one_call(self, b, fn):
        return f'"{DS_CALL_BEGIN}" {literal(fn["name"])} "{DS_SEP}" {b.schema(tool_parameters(fn))} "{DS_CALL_END}"'
