"""Templates without tool support: the tools described in the system prompt, calls as {"tool_call": {...}}."""

from __future__ import annotations

from llamaserve.chat.formats.base import ChatFormat, alts, json_call_ahead
from llamaserve.chat.output import Malformed
from llamaserve.chat.tool_grammar import Trigger
from llamaserve.chat.tool_prompt import generic_messages


class Generic(ChatFormat):
    """Templates without tool support: tools described in the system prompt, calls as {"tool_call": {...}}."""

    name = "generic"
    native_tools = False

    def prepare_messages(self, messages, tools, *, parallel=True, system_role=True, template_shows_tools=None):
        if not tools:
            return messages, None
        return generic_messages(messages, tools, parallel, system_role), None

    def body(self, p, at_start, prompt):
        if at_start and (yield from p.peek_any(("{",), skip_ws=True)):
            yield from p.skip_ws()
            p.open_section(start=p.pos, resume=p.pos)
            yield from json_call_ahead(p, ("tool_call", "tool_calls"))
            yield from p.expect("{")
            key = yield from p.json_string()
            yield from p.expect(":")
            if key == "tool_call":
                yield from p.call_object()
            elif key == "tool_calls":
                yield from p.call_array()
            else:
                raise Malformed("not a tool call", silent=True)
            yield from p.expect("}")
            p.commit()
            yield from p.skip_ws()
        yield from self.plain_body(p, False)

    def _calls_rule(self, b, fns, parallel):
        ws = b.ws()
        one = b.add("call", alts([self._json_call(b, fn) for fn in fns]))
        single = f'"\\"tool_call\\"" {ws} ":" {ws} {one}'
        many = f'"\\"tool_calls\\"" {ws} ":" {ws} "[" {ws} {one} ( {ws} "," {ws} {one} )* {ws} "]"'
        return f'"{{" {ws} {alts([single, many]) if parallel else single} {ws} "}}"'

    def _triggers(self, fns):
        return [Trigger("pattern", r'^\s*(\{)\s*"tool_calls?"')]
