"""Streaming parser of a model's chat output into content, reasoning and tool calls.

`OutputParser.feed(text_delta)` returns OpenAI-shaped deltas as soon as they are
certain; `finish()` returns the last ones and the whole message. The format
(chat/formats/) supplies the grammar of its output as a generator `body(p,
at_start)` written against the primitives of chat/cursor.py.

Rules every format gets from here:
- Text that might be the start of a marker is held back, never sent as content.
- A tool-call section is all-or-nothing: its events are buffered until the
  section closes; if it turns out malformed, its text goes to content and
  `problems` says why. With `stream_arguments` (for output a grammar keeps
  well-formed) call events flush as they arrive instead, so arguments stream;
  a call broken after that keeps what was sent.
- Streamed deltas always assemble to exactly the final message.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from llamaserve.chat.cursor import Cursor, Malformed, ReasoningMode, Step

if TYPE_CHECKING:
    from llamaserve.chat.formats import ChatFormat

__all__ = ["ChatMessage", "Malformed", "OutputParser", "ReasoningMode", "ToolCall", "parse_output", "reasoning_mode"]

_ALNUM = string.ascii_letters + string.digits

REASONING_FORMATS = ("none", "auto", "deepseek", "deepseek-legacy")


def reasoning_mode(reasoning_format: str, stream: bool) -> ReasoningMode:
    """llama-server's --reasoning-format semantics.

    none: thoughts are left unparsed in content. auto and deepseek: thoughts go
    to reasoning_content, streamed as delta.reasoning_content. deepseek-legacy:
    like deepseek, except that a streamed response keeps them inline in
    <think> tags in delta.content.
    """
    if reasoning_format not in REASONING_FORMATS:
        raise ValueError(f"unknown reasoning format {reasoning_format!r} (expected one of {', '.join(REASONING_FORMATS)})")
    if reasoning_format == "none":
        return ReasoningMode.RAW
    if reasoning_format == "deepseek-legacy" and stream:
        return ReasoningMode.INLINE
    return ReasoningMode.SEPARATE


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str = ""  # a JSON object, as text

    def to_openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class ChatMessage:
    content: str = ""
    reasoning_content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)

    def to_openai(self) -> dict[str, Any]:
        """The response's `message` (OpenAI: content is null when the turn is only tool calls)."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content or (None if self.tool_calls else "")}
        if self.reasoning_content:
            msg["reasoning_content"] = self.reasoning_content
        if self.tool_calls:
            msg["tool_calls"] = [c.to_openai() for c in self.tool_calls]
        return msg


def openai_call_id() -> str:
    return "call_" + "".join(secrets.choice(_ALNUM) for _ in range(24))


class OutputParser:
    """Turns one choice's generated text, delta by delta, into OpenAI chat deltas and a final message.

    tools: the request's tool functions ({"name", "parameters", ...}); without
        any, markup is not parsed as calls (tool_choice none, or no tools).
    reasoning_format: none | auto | deepseek | deepseek-legacy (llama-server's).
    stream: whether the deltas are sent (deepseek-legacy differs).
    prompt: the rendered prompt; its end tells whether it opened a think block.
    stream_arguments: flush tool-call deltas while a call is being written
        (for grammar-constrained output; see the module docstring).
    new_id: tool-call id factory (defaults to the format's).
    """

    def __init__(
        self,
        fmt: "ChatFormat",
        tools: Sequence[dict[str, Any]] | None = None,
        *,
        reasoning_format: str = "auto",
        stream: bool = False,
        prompt: str = "",
        stream_arguments: bool = False,
        new_id: Callable[[], str] | None = None,
    ):
        self.format = fmt
        functions = [t.get("function", t) for t in (tools or []) if isinstance(t, dict)]
        mode = reasoning_mode(reasoning_format, stream)
        self._p = Cursor(functions, mode, fmt.thinking_open(prompt) if mode != ReasoningMode.RAW else False)
        self._prompt = prompt
        self._parse_calls = bool(functions)
        self._eager = stream_arguments
        self._new_id = new_id or fmt.new_call_id
        self.message = ChatMessage()
        self.problems: list[str] = []
        self._deltas: list[dict[str, Any]] = []
        self._gen = self._run()
        self._done = False

    def feed(self, text: str) -> list[dict[str, Any]]:
        if text:
            self._p.text += text
            self._resume()
        return self._take()

    def finish(self) -> tuple[list[dict[str, Any]], ChatMessage]:
        self._p.eof = True
        self._resume()
        return self._take(), self.message

    def _run(self) -> Step:
        p, fmt = self._p, self.format
        yield from fmt.reasoning(p)
        at_start = True
        while True:
            try:
                if self._parse_calls:
                    yield from fmt.body(p, at_start, self._prompt)
                else:
                    yield from fmt.plain_body(p, at_start)
                # a format that stops early leaves the rest as content
                yield from p.text_until((), drop_ws=False)
                return
            except Malformed as exc:
                self._recover(exc)
                at_start = False

    def _recover(self, exc: Malformed) -> None:
        p = self._p
        sec = p.section
        p.section = None
        if sec is None:  # not inside a call: nothing to undo; move on by a character so parsing progresses
            p.emit("content", p.text[p.pos:p.pos + 1])
            p.pos += 1
            return
        if not exc.silent:
            # the text read when the problem showed (the same however the output was split)
            self.problems.append(f"{exc.reason}, after {p.text[max(sec.start, p.pos - 80):p.pos]!r}; the text stays in content")
        p.in_call = False
        if sec.committed:
            # already streamed: the call keeps what was sent; the rest is content
            p.events.extend(sec.events)
            return
        # the section's text up to where it went wrong is content; parsing goes on from there
        # (so markers inside the broken call are not tried again)
        end = max(p.pos, sec.resume)
        p.emit("content", p.text[sec.start:end])
        p.pos = end

    def _resume(self) -> None:
        if not self._done:
            try:
                next(self._gen)
            except StopIteration:
                self._done = True
        p = self._p
        if self._eager and p.section is not None and p.section.events:
            p.events.extend(p.section.events)
            p.section.events = []
            p.section.committed = True
        if self._done and p.section is not None:  # a format returned inside a section: keep what it found
            p.commit()

    def _take(self) -> list[dict[str, Any]]:
        p, msg, out = self._p, self.message, self._deltas
        for ev in p.events:
            kind = ev[0]
            if kind in ("content", "reasoning"):
                text = ev[1]
                if kind == "content":
                    msg.content += text
                    key = "content"
                else:
                    msg.reasoning_content += text
                    key = "reasoning_content"
                if out and list(out[-1]) == [key]:
                    out[-1][key] += text
                else:
                    out.append({key: text})
            elif kind == "call":
                call = ToolCall(self._new_id(), ev[1])
                msg.tool_calls.append(call)
                out.append({"tool_calls": [{
                    "index": len(msg.tool_calls) - 1, "id": call.id, "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }]})
            elif kind == "args":
                index = len(msg.tool_calls) - 1
                msg.tool_calls[-1].arguments += ev[1]
                last = out[-1]["tool_calls"][0] if out and "tool_calls" in out[-1] else None
                if last is not None and last["index"] == index and "id" not in last:
                    last["function"]["arguments"] += ev[1]
                else:
                    out.append({"tool_calls": [{"index": index, "function": {"arguments": ev[1]}}]})
        p.events = []
        self._deltas = []
        return out


def parse_output(fmt: "ChatFormat", text: str, tools: Sequence[dict[str, Any]] | None = None, **kwargs: Any) -> tuple[ChatMessage, list[str]]:
    """The whole output at once: (message, problems)."""
    parser = OutputParser(fmt, tools, **kwargs)
    parser.feed(text)
    _, message = parser.finish()
    return message, parser.problems
