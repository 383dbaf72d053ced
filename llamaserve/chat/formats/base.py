"""The base of every family's format: `ChatFormat` (its markers, call grammar and parsing hooks; the package
docstring says what a format knows), `ContentOnly`, and the helpers the family modules share.
"""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

from llamaserve.chat.output import (
    Cursor,
    Malformed,
    OutputParser,
    Step,
    openai_call_id,
)
from llamaserve.chat.tool_grammar import (
    GrammarBuilder,
    SchemaToGbnf,
    ToolGrammar,
    Trigger,
    json_literal,
    literal,
    tool_parameters,
)
from llamaserve.chat.tool_prompt import (
    add_system_text,
    native_tool_prompt,
)

Tool = dict[str, Any]


def tool_functions(tools: Sequence[Tool] | None) -> list[Tool]:
    return [t.get("function", t) for t in (tools or [])]


class ChatFormat:
    """One family's output format. Subclasses describe the families; instances carry template facts."""

    name = "content"
    reasoning_start: str | None = "<think>"
    reasoning_end: str | None = "</think>"
    call_markers: tuple[str, ...] = ()  # markers that open a tool-call section inside content
    strip_markers: tuple[str, ...] = ()  # markup dropped from content (response wrappers)
    preserved_tokens: tuple[str, ...] = ()  # special tokens the detokenizer must render as text
    additional_stops: tuple[str, ...] = ()
    native_tools = True  # the template shows the tools to the model itself

    def __init__(self, source: str = ""):
        self.source = source
        # the template itself knows the think markers (not only tolerated in the output)
        self.supports_reasoning = bool(self.reasoning_start and self.reasoning_start in source)
        # whether the template describes the tools to the model (the chat renderer's caps say it better)
        self.shows_tools = bool(re.search(r"\btools\b|available_tools|functions", source))

    def __repr__(self) -> str:
        return f"<ChatFormat {self.name}>"

    # --- what the endpoint asks ---

    def parser(self, tools: Sequence[Tool] | None = None, **kwargs: Any) -> OutputParser:
        """A streaming parser for one choice (see OutputParser for the keyword arguments)."""
        return OutputParser(self, tools, **kwargs)

    def thinking_open(self, prompt: str) -> bool:
        """Whether the prompt ends inside a think block (the generation prompt opened it)."""
        return bool(self.reasoning_start) and prompt.rstrip().endswith(self.reasoning_start)

    def new_call_id(self) -> str:
        return openai_call_id()

    @property
    def reasoning_close(self) -> str | None:
        """Text that ends the thoughts when a reasoning budget runs out (None: the family has none)."""
        return self.reasoning_end

    def prepare_messages(
        self, messages: list[dict[str, Any]], tools: Sequence[Tool] | None, *, parallel: bool = True,
        system_role: bool = True, template_shows_tools: bool | None = None,
    ) -> tuple[list[dict[str, Any]], list[Tool] | None]:
        """(messages, tools) to render: what the template gets in place of the request's.

        A template of this family that does not describe tools itself (template_shows_tools:
        the renderer's caps.supports_tools; by default guessed from the source) gets them in
        the system message, with the family's call syntax. system_role: caps.supports_system_role.
        """
        messages = self._fix_history(messages)
        if not tools:
            return messages, None
        shows = self.shows_tools if template_shows_tools is None else template_shows_tools
        if not shows:
            fn = tool_functions(tools)[0]
            example = self.example_call(fn["name"], '{"' + next(iter(tool_parameters(fn).get("properties") or {"arg": 0})) + '": ...}')
            messages = add_system_text(messages, native_tool_prompt(tools, example), system_role)
        return messages, list(tools)

    def _fix_history(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return messages

    def example_call(self, name: str, arguments: str) -> str | None:
        """One call in this family's syntax, for prompts that must teach it."""
        return None

    def grammar(
        self, tools: Sequence[Tool], schema_to_gbnf: SchemaToGbnf, *, required: bool, parallel: bool = True, prompt: str = "",
    ) -> ToolGrammar:
        """The grammar for calls to `tools`.

        required: the output must be calls from the start (tool_choice
        required, or a named tool: pass only that one); otherwise a lazy
        grammar that engages at the family's opening marker. Raises whatever
        schema_to_gbnf raises for a tool's parameter schema.
        """
        fns = tool_functions(tools)
        if not fns:
            raise ValueError("a tool grammar needs at least one tool")
        b = GrammarBuilder(schema_to_gbnf)
        calls = self._calls_rule(b, fns, parallel)
        if required:
            b.add("root", self._reasoning_prefix(b, prompt) + calls)
            return ToolGrammar(b.text(), lazy=False)
        b.add("root", calls)
        return ToolGrammar(b.text(), lazy=True, triggers=tuple(self._triggers(fns)))

    # --- parsing (used by OutputParser) ---

    def reasoning(self, p: Cursor) -> Step:
        if self.reasoning_start and self.reasoning_end:
            yield from p.reasoning_block(self.reasoning_start, self.reasoning_end)

    def plain_body(self, p: Cursor, at_start: bool) -> Step:
        """Output without tool parsing: content, minus the family's response wrappers."""
        while True:
            m = yield from p.text_until(self.strip_markers)
            if m is None:
                return

    def body(self, p: Cursor, at_start: bool, prompt: str) -> Step:
        markers = self.call_markers + self.strip_markers
        while True:
            m = yield from p.text_until(markers)
            if m is None:
                return
            if m in self.strip_markers:
                continue
            p.open_section()
            yield from self.section(p, m)
            p.commit()
            yield from p.skip_ws()

    def section(self, p: Cursor, marker: str) -> Step:
        """The calls after `marker` (already consumed)."""
        raise NotImplementedError
        yield  # pragma: no cover

    # --- grammar pieces ---

    def _calls_rule(self, b: GrammarBuilder, fns: list[Tool], parallel: bool) -> str:
        raise NotImplementedError

    def _triggers(self, fns: list[Tool]) -> list[Trigger]:
        return [Trigger("word", m) for m in self.call_markers[:1]]

    def _reasoning_prefix(self, b: GrammarBuilder, prompt: str) -> str:
        if not (self.supports_reasoning and self.reasoning_start and self.reasoning_end):
            return ""
        end = literal(self.reasoning_end)
        body = f"{b.until(self.reasoning_end)} {end} {b.ws()} "
        if self.thinking_open(prompt):
            return body
        return f"( {literal(self.reasoning_start)} {body})? "

    @staticmethod
    def _json_call(b: GrammarBuilder, fn: Tool, name_key: str = "name", args_key: str = "arguments", extra: str = "") -> str:
        """{"name": "f", "arguments": {...}} for one tool, with optional leading fields."""
        ws = b.ws()
        return (
            f'"{{" {ws} {extra}{literal(json.dumps(name_key))} {ws} ":" {ws} {json_literal(fn["name"])} {ws} "," {ws} '
            f'{literal(json.dumps(args_key))} {ws} ":" {ws} {b.schema(tool_parameters(fn))} {ws} "}}"'
        )

    @staticmethod
    def _repeat(b: GrammarBuilder, name: str, one: str, sep: str, parallel: bool) -> str:
        rule = b.add(name, one)
        return f"{rule} ( {sep} {rule} )*" if parallel else rule


def alts(items: list[str]) -> str:
    return "( " + " | ".join(items) + " )"


class ContentOnly(ChatFormat):
    """No tool calls (tools are not parsed); reasoning in <think> is still extracted."""

    def body(self, p: Cursor, at_start: bool, prompt: str) -> Step:
        yield from self.plain_body(p, at_start)

    def _calls_rule(self, b, fns, parallel):
        raise ValueError("this chat format has no tool calls")



def json_call_ahead(p: Cursor, keys: Sequence[str]) -> Step:
    """A JSON object as the whole reply is a call only if it starts with one of `keys`; else it is an answer."""
    while not p.eof and ":" not in p.rest()[:64] and len(p.rest()) < 64:
        yield
    pattern = r'\{\s*"(?:' + "|".join(map(re.escape, keys)) + r')"\s*:'
    if not re.match(pattern, p.rest()):
        raise Malformed("not a tool call", silent=True)
