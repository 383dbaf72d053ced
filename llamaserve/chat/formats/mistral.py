"""Mistral: [TOOL_CALLS] followed by a JSON list (Nemo) or NAME[ARGS]{...} (Small 3.2, Devstral, Magistral),
and the 9-character alphanumeric call ids its templates insist on.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from typing import Any

from llamaserve.chat.formats.base import ChatFormat, alts
from llamaserve.chat.output import Cursor, Step
from llamaserve.chat.tool_grammar import literal, tool_parameters

_ALNUM = string.ascii_letters + string.digits


class MistralNemo(ChatFormat):
    """Mistral Nemo: [TOOL_CALLS][{"name": ..., "arguments": ..., "id": ...}, ...]."""

    name = "mistral-nemo"
    call_markers = ("[TOOL_CALLS]",)
    preserved_tokens = ("[TOOL_CALLS]",)
    reasoning_start = reasoning_end = None

    def new_call_id(self) -> str:
        return _mistral_id()

    def _fix_history(self, messages):
        return _mistral_ids(messages)

    def section(self, p, marker):
        yield from p.skip_ws()
        first = yield from p.peek_any(("[", "{"))
        if first == "[":
            yield from p.call_array()
        elif first == "{":
            yield from p.call_object()
        else:
            yield from _mistral_named_call(p)

    def _calls_rule(self, b, fns, parallel):
        ws = b.ws()
        id_field = f' {ws} "," {ws} "\\"id\\"" {ws} ":" {ws} "\\"" [a-zA-Z0-9]{{9}} "\\""'
        calls = []
        for fn in fns:
            call = self._json_call(b, fn)
            calls.append(call[: -len('"}"')] + id_field + ' "}"')  # the id follows the arguments, as the template writes it
        one = b.add("call", alts(calls))
        inner = f"{one} ( {ws} \",\" {ws} {one} )*" if parallel else one
        return f'"[TOOL_CALLS]" {ws} "[" {ws} {inner} {ws} "]"'


class MistralSmall(MistralNemo):
    """Mistral Small 3.2, Devstral, Ministral / Magistral: [TOOL_CALLS]NAME[CALL_ID]id[ARGS]{...}, [THINK] thoughts."""

    name = "mistral-small"
    preserved_tokens = ("[TOOL_CALLS]", "[ARGS]", "[CALL_ID]", "[THINK]", "[/THINK]")

    def __init__(self, source: str = ""):
        if "[THINK]" in source:
            self.reasoning_start, self.reasoning_end = "[THINK]", "[/THINK]"
        super().__init__(source)
        self.call_ids = "[CALL_ID]" in source

    def _calls_rule(self, b, fns, parallel):
        ws = b.ws()
        call_id = '( "[CALL_ID]" [a-zA-Z0-9]{9} )? ' if self.call_ids else ""
        calls = [f'{literal(fn["name"])} {call_id}"[ARGS]" {b.schema(tool_parameters(fn))}' for fn in fns]
        return self._repeat(b, "call", f'"[TOOL_CALLS]" {alts(calls)}', ws, parallel)


def _mistral_named_call(p: Cursor) -> Step:
    name, term = yield from p.read_until(("[CALL_ID]", "[ARGS]"), max_len=128)
    if term == "[CALL_ID]":
        yield from p.read_until(("[ARGS]",), max_len=64)
    p.start_call(name.strip())
    yield from p.call_arguments()
    p.end_call()


def _mistral_id() -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(9))


def _mistral_ids(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mistral templates insist on 9-character alphanumeric call ids: map other ids onto such, consistently."""

    def fix(cid: Any) -> Any:
        if not isinstance(cid, str) or (len(cid) == 9 and cid.isalnum()):
            return cid
        digest = hashlib.sha256(cid.encode()).digest()
        return "".join(_ALNUM[b % len(_ALNUM)] for b in digest[:9])

    out = []
    for m in messages:
        if m.get("tool_calls"):
            m = {**m, "tool_calls": [{**c, "id": fix(c.get("id"))} for c in m["tool_calls"]]}
        if m.get("role") == "tool" and "tool_call_id" in m:
            m = {**m, "tool_call_id": fix(m["tool_call_id"])}
        out.append(m)
    return out
