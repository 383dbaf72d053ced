"""Llama 3.1 / 3.2 / 3.3: a JSON call as the whole reply, or <|python_tag|> with a JSON call, a built-in tool
call (name.call(k="v")) or code for the python tool (also used by Functionary v3.1).
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from llamaserve.chat.formats.base import ChatFormat, alts, json_call_ahead
from llamaserve.chat.output import Cursor, Malformed, Step
from llamaserve.chat.tool_grammar import Trigger


class Llama3(ChatFormat):
    """Llama 3.1 / 3.2 / 3.3: a JSON call {"name": ..., "parameters": ...} as the whole reply, or <|python_tag|>."""

    name = "llama3"
    call_markers = ("<|python_tag|>",)
    preserved_tokens = ("<|python_tag|>",)
    additional_stops = ("<|eom_id|>",)
    reasoning_start = reasoning_end = None

    def body(self, p, at_start, prompt):
        if at_start:
            first = yield from p.peek_any(("{",), skip_ws=True)
            if first:
                yield from p.skip_ws()
                p.open_section(start=p.pos, resume=p.pos)
                yield from json_call_ahead(p, ("name", "type", "function"))
                while True:
                    yield from p.call_object(args_keys=("parameters", "arguments"))
                    yield from p.skip_ws()
                    more = yield from p.peek_any(("{", ";"))
                    if more is None:
                        break
                    yield from p.accept(";")
                p.commit()
        yield from super().body(p, False, prompt)

    def section(self, p, marker):
        yield from python_tag_call(p)

    def _calls_rule(self, b, fns, parallel):
        ws = b.ws()
        extra = f'( "\\"type\\"" {ws} ":" {ws} "\\"function\\"" {ws} "," {ws} )? '
        one = alts([self._json_call(b, fn, args_key="parameters", extra=extra) for fn in fns])
        return b.add("call", one)

    def _triggers(self, fns):
        return [Trigger("pattern", r'^\s*(\{)\s*"(?:type|name)"'), Trigger("word", "<|python_tag|>")]


def _python_tool_name(p: Cursor) -> str:
    for name in ("python", "code_interpreter", "ipython"):
        if name in p.tools:
            return name
    raise Malformed("the model wrote code to run, but no python tool was given")


_BUILTIN_CALL = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\.call\(")


def python_tag_call(p: Cursor) -> Step:
    """After <|python_tag|>: a JSON call, a built-in tool call name.call(k="v"), or code for the python tool."""
    yield from p.skip_ws()
    if (yield from p.peek_any(("{",))):
        yield from p.call_object(args_keys=("parameters", "arguments"))
        return
    while not p.eof and "(" not in p.rest() and "\n" not in p.rest() and len(p.rest()) < 64:
        yield
    if _BUILTIN_CALL.match(p.rest()):
        yield from p.wait_eof()
        name, args = _parse_builtin_call(p.rest())
        p.pos = len(p.text)
        p.start_call(name)
        p.args(json.dumps(args, ensure_ascii=False))
        p.end_call()
        return
    p.start_call(_python_tool_name(p))
    p.args('{"code": "')
    yield from p.stream_json_string(())
    p.args('"}')
    p.end_call()


def _parse_builtin_call(text: str) -> tuple[str, dict[str, Any]]:
    try:
        node = ast.parse(text.strip(), mode="eval").body
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "call"
                and isinstance(node.func.value, ast.Name) and not node.args):
            raise ValueError
        return node.func.value.id, {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
    except (SyntaxError, ValueError) as exc:
        raise Malformed(f"cannot read the built-in tool call {text.strip()[:60]!r}") from exc
