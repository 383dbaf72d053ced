"""The cursor that chat-output formats are written with: a position in text that arrives in pieces.

A format (chat/formats/) describes its output as a generator over these
primitives; a primitive yields when it needs more text, so parsing resumes
exactly where it stopped and each character is read about once. Events
(content, reasoning, calls, argument fragments) collect on the cursor for
OutputParser (chat/output.py) to turn into deltas. Inside a tool-call section
events are buffered, so a section found malformed can be undone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Generator, Iterable, Sequence

from llamaserve.chat.json_scan import JsonScanner, JsonSyntaxError

Step = Generator[None, None, Any]

_WS = " \t\n\r"


class ReasoningMode(Enum):
    RAW = "raw"  # leave thoughts in content as the model wrote them
    SEPARATE = "separate"  # thoughts go to reasoning_content
    INLINE = "inline"  # thoughts stay in content, wrapped in <think> tags


class Malformed(Exception):
    """The text at the cursor is not what the format expects there.

    `silent` marks text that simply is not a call (e.g. a JSON answer that looks
    like the start of one): it goes to content without a logged problem.
    """

    def __init__(self, reason: str, silent: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.silent = silent


@dataclass
class _Section:
    start: int  # where its text begins (whitespace dropped before the marker included)
    resume: int  # where content parsing resumes if it is rejected (after the marker)
    events: list[tuple] = field(default_factory=list)
    committed: bool = False  # events already sent (stream_arguments)


class Cursor:
    """The parse position in the text received so far, and the primitives formats are written with.

    Generator primitives (used with `yield from`) wait for text; they raise
    `Malformed` inside a section. Positions are offsets in `text`.
    """

    def __init__(self, tools: Sequence[dict[str, Any]], mode: ReasoningMode, thinking_open: bool):
        self.text = ""
        self.pos = 0
        self.eof = False
        self.mode = mode
        self.thinking_open = thinking_open
        self.tools = {t["name"]: t for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)}
        self.events: list[tuple] = []
        self.section: _Section | None = None
        self.in_call = False
        self.args_sent = False
        self.marker_start = 0  # set by text_until: where the marker it stopped at begins
        self.ws_start = 0  # ... and where the whitespace dropped before it begins

    # --- events ---

    def _event(self, ev: tuple) -> None:
        (self.section.events if self.section is not None else self.events).append(ev)

    def emit(self, kind: str, text: str) -> None:
        if text:
            self._event((kind, text))

    def start_call(self, name: str) -> None:
        if self.tools and name not in self.tools:
            raise Malformed(f"the model called an unknown tool {name!r}")
        if not name:
            raise Malformed("tool call without a name")
        self._event(("call", name))
        self.in_call, self.args_sent = True, False

    def args(self, fragment: str) -> None:
        if fragment:
            self._event(("args", fragment))
            self.args_sent = True

    def end_call(self) -> None:
        if not self.args_sent:
            self._event(("args", "{}"))
        self.in_call = False

    def open_section(self, start: int | None = None, resume: int | None = None) -> None:
        """Start a tool-call section at the marker text_until just consumed (or the given span)."""
        self.section = _Section(self.ws_start if start is None else start, self.pos if resume is None else resume)

    def commit(self) -> None:
        sec = self.section
        if sec is not None:
            self.section = None
            self.events.extend(sec.events)

    # --- reading ---

    def rest(self) -> str:
        return self.text[self.pos:]

    def need(self, n: int = 1) -> Step:
        """Wait until n more characters are available (or the text ends)."""
        while len(self.text) - self.pos < n and not self.eof:
            yield

    def wait_eof(self) -> Step:
        while not self.eof:
            yield

    def skip_ws(self) -> Step:
        """Consume whitespace; returns once a non-whitespace character (or the end) is there."""
        while True:
            n = len(self.text)
            while self.pos < n and self.text[self.pos] in _WS:
                self.pos += 1
            if self.pos < n or self.eof:
                return
            yield

    def peek_any(self, options: Iterable[str], skip_ws: bool = False) -> Step:
        """Which of `options` the text at the cursor starts with (after whitespace if skip_ws), or None.

        Consumes nothing. Waits while the answer is still open.
        """
        options = tuple(options)
        while True:
            i = self.pos
            if skip_ws:
                while i < len(self.text) and self.text[i] in _WS:
                    i += 1
            avail = self.text[i:]
            for opt in options:
                if avail.startswith(opt):
                    return opt
            if self.eof or not any(opt.startswith(avail) for opt in options):
                return None
            yield

    def expect(self, literal: str, skip_ws: bool = True) -> Step:
        if skip_ws:
            yield from self.skip_ws()
        found = yield from self.peek_any((literal,))
        if found is None:
            raise Malformed(f"expected {literal!r}")
        self.pos += len(literal)

    def accept(self, literal: str, skip_ws: bool = True) -> Step:
        """Consume `literal` if it comes next; returns whether it did."""
        start = self.pos
        if skip_ws:
            yield from self.skip_ws()
        if (yield from self.peek_any((literal,))) is None:
            self.pos = start
            return False
        self.pos += len(literal)
        return True

    def read_until(self, terminators: Sequence[str], max_len: int = 256, consume: bool = True) -> Step:
        """The text up to the first terminator (returned as (text, terminator)); the terminator is consumed if `consume`."""
        while True:
            best = _find_first(self.text, self.pos, terminators)
            if best is not None and best[0] - self.pos <= max_len:
                at, term = best
                value = self.text[self.pos:at]
                self.pos = at + (len(term) if consume else 0)
                return value, term
            if len(self.text) - self.pos > max_len + max(map(len, terminators)) or self.eof:
                raise Malformed(f"expected one of {list(terminators)} within {max_len} characters")
            yield

    def text_until(self, markers: Sequence[str], kind: str = "content", drop_ws: bool = True, trim_end: bool = False) -> Step:
        """Emit text as `kind` up to the first of `markers`, consume the marker and return it (None at the end).

        Text that may be the start of a marker is held back. With `drop_ws`,
        whitespace right before a marker is dropped; with `trim_end`, also
        whitespace at the very end of the text.
        """
        while True:
            found = _find_first(self.text, self.pos, markers) if markers else None
            if found is not None:
                at, marker = found
                end = at
                if drop_ws:
                    while end > self.pos and self.text[end - 1] in _WS:
                        end -= 1
                self.emit(kind, self.text[self.pos:end])
                self.ws_start, self.marker_start = end, at
                self.pos = at + len(marker)
                return marker
            if self.eof:
                end = len(self.text)
                if trim_end:
                    while end > self.pos and self.text[end - 1] in _WS:
                        end -= 1
                self.emit(kind, self.text[self.pos:end])
                self.pos = len(self.text)
                return None
            end = len(self.text) - _partial_marker_len(self.text, self.pos, markers)
            if drop_ws or trim_end:
                while end > self.pos and self.text[end - 1] in _WS:
                    end -= 1
            self.emit(kind, self.text[self.pos:end])
            self.pos = end
            yield

    def json_value(self) -> Step:
        """A complete JSON value (after whitespace), parsed."""
        yield from self.skip_ws()
        start = self.pos
        scanner = JsonScanner()
        yield from self._scan(scanner, None)
        return json.loads(self.text[start:self.pos])

    def json_string(self) -> Step:
        value = yield from self.json_value()
        if not isinstance(value, str):
            raise Malformed(f"expected a JSON string, got {type(value).__name__}")
        return value

    def call_arguments(self) -> Step:
        """Stream a JSON object (the call's arguments) as argument fragments.

        Arguments given as a JSON string holding the object (some models do
        that) are decoded first.
        """
        yield from self.skip_ws()
        first = yield from self.peek_any(("{", '"'))
        if first is None:
            raise Malformed("tool call arguments must be a JSON object")
        if first == '"':
            text = yield from self.json_string()
            try:
                value = json.loads(text)
            except ValueError:
                value = None
            if not isinstance(value, dict):
                raise Malformed("tool call arguments must be a JSON object")
            self.args(text)
            return
        yield from self._scan(JsonScanner(), self.args)

    def _scan(self, scanner: JsonScanner, sink: Callable[[str], None] | None) -> Step:
        while True:
            start = self.pos
            try:
                self.pos = scanner.scan(self.text, start)
                if self.eof and not scanner.done:
                    scanner.finish(self.text)
                    self.pos = len(self.text)
            except JsonSyntaxError as exc:
                if sink is not None:
                    sink(self.text[start:exc.pos])
                self.pos = exc.pos
                raise Malformed(f"invalid JSON in tool call: {exc}") from None
            if sink is not None:
                sink(self.text[start:self.pos])
            if scanner.done:
                return
            yield

    def call_object(self, name_keys: Sequence[str] = ("name",), args_keys: Sequence[str] = ("arguments", "parameters")) -> Step:
        """One call written as a JSON object: {"name": ..., "arguments": {...}} and the like.

        Arguments stream when the name comes first (as the grammars write it);
        other keys (ids, "type") are read and ignored.
        """
        yield from self.expect("{")
        name: str | None = None
        held_args: str | None = None
        seen_args = False
        if (yield from self.accept("}")):
            raise Malformed("empty tool call object")
        while True:
            yield from self.skip_ws()
            key = yield from self.json_string()
            yield from self.expect(":")
            if key in name_keys and name is None:
                name = yield from self.json_string()
            elif key in args_keys and not seen_args:
                seen_args = True
                if name is not None:
                    self.start_call(name)
                    yield from self.call_arguments()
                else:
                    value = yield from self.json_value()
                    if isinstance(value, str):
                        try:
                            value = json.loads(value)
                        except ValueError:
                            pass
                    if not isinstance(value, dict):
                        raise Malformed("tool call arguments must be a JSON object")
                    held_args = json.dumps(value, ensure_ascii=False)
            elif key == "function" and name is None and not seen_args:
                # OpenAI's own shape: {"type": "function", "function": {"name": ..., "arguments": ...}}
                yield from self.call_object(name_keys, args_keys)
                name, seen_args = "", True
            else:
                yield from self.json_value()
            if (yield from self.accept(",")):
                continue
            yield from self.expect("}")
            break
        if name == "":  # the nested object was the call
            return
        if name is None:
            raise Malformed("tool call without a name")
        if not self.in_call:
            self.start_call(name)
            if held_args is not None:
                self.args(held_args)
        self.end_call()

    def call_array(self, opened: bool = False, **keys: Any) -> Step:
        """A JSON array of call objects ([ already consumed if `opened`)."""
        if not opened:
            yield from self.expect("[")
        if (yield from self.accept("]")):
            raise Malformed("empty list of tool calls")
        while True:
            yield from self.call_object(**keys)
            if (yield from self.accept(",")):
                continue
            yield from self.expect("]")
            return

    def stream_json_string(self, terminators: Sequence[str], consume: bool = True, strip_newline: bool = False) -> Step:
        """Stream raw text up to a terminator as the body of a JSON string in the arguments.

        Returns the terminator found (None at the end of the text). With
        strip_newline, one newline at each end of the text is dropped (XML
        parameter values are written on their own lines).
        """
        if strip_newline:
            yield from self.need(1)
            if self.text.startswith("\n", self.pos):
                self.pos += 1
        while True:
            found = _find_first(self.text, self.pos, terminators) if terminators else None
            if found is not None:
                at, term = found
                end = at - 1 if strip_newline and at > self.pos and self.text[at - 1] == "\n" else at
                self.args(json.dumps(self.text[self.pos:end], ensure_ascii=False)[1:-1])
                self.pos = at + (len(term) if consume else 0)
                return term
            if self.eof:
                self.args(json.dumps(self.text[self.pos:], ensure_ascii=False)[1:-1])
                self.pos = len(self.text)
                return None
            end = len(self.text) - _partial_marker_len(self.text, self.pos, terminators)
            if strip_newline and end > self.pos and self.text[end - 1] == "\n":
                end -= 1
            self.args(json.dumps(self.text[self.pos:end], ensure_ascii=False)[1:-1])
            self.pos = end
            yield

    def reasoning_block(self, start: str, end: str) -> Step:
        """Thoughts at the start of the output (or already opened by the prompt), per the reasoning mode."""
        if self.mode == ReasoningMode.RAW:
            return
        if not self.thinking_open:
            found = yield from self.peek_any((start,), skip_ws=True)
            if found is None:
                return
            yield from self.skip_ws()
            self.pos += len(start)
        if self.mode == ReasoningMode.INLINE:
            self.emit("content", start)
            found = yield from self.text_until((end,), kind="content", drop_ws=False)
            if found:
                self.emit("content", end)
            return
        yield from self.skip_ws()
        found = yield from self.text_until((end,), kind="reasoning", trim_end=True)
        if found:
            yield from self.skip_ws()


def _find_first(text: str, pos: int, markers: Sequence[str]) -> tuple[int, str] | None:
    best: tuple[int, str] | None = None
    for m in markers:
        at = text.find(m, pos)
        if at >= 0 and (best is None or at < best[0] or (at == best[0] and len(m) > len(best[1]))):
            best = (at, m)
    return best


def _partial_marker_len(text: str, pos: int, markers: Sequence[str]) -> int:
    """Length of the longest suffix of text[pos:] that is a proper prefix of a marker."""
    best = 0
    n = len(text)
    for m in markers:
        for k in range(min(len(m) - 1, n - pos), best, -1):
            if text.endswith(m[:k]):
                best = k
                break
    return best
