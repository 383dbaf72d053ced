"""The Hermes family (Hermes 2 Pro / 3, Qwen 2.5 / 3, ...): each call a JSON object inside <tool_call>...</tool_call>."""

from __future__ import annotations

from llamaserve.chat.formats.base import ChatFormat, alts


class Hermes(ChatFormat):
    """Hermes 2 Pro / 3, Qwen 2.5 / 3 / QwQ, Granite 4, SmolLM3...: <tool_call>{"name": ..., "arguments": ...}</tool_call>."""

    name = "hermes"
    call_markers = ("<tool_call>",)
    preserved_tokens = ("<tool_call>", "</tool_call>", "<think>", "</think>")

    def example_call(self, name, arguments):
        return f'<tool_call>\n{{"name": "{name}", "arguments": {arguments}}}\n</tool_call>'

    def section(self, p, marker):
        yield from p.call_object()
        yield from p.expect("</tool_call>")

    def _calls_rule(self, b, fns, parallel):
        ws = b.ws()
        one = alts([self._json_call(b, fn) for fn in fns])
        return self._repeat(b, "call", f'"<tool_call>" {ws} {one} {ws} "</tool_call>"', ws, parallel)
