"""Model families' tool-call and reasoning formats, detected from the chat template's source.

A `ChatFormat` knows one family's output: the markup of its tool calls and
thoughts (parsed by `OutputParser`, chat/output.py, with the `body` generator
here), the grammar that makes the model write valid calls, the lazy-grammar
triggers, the special tokens that must be rendered as text for the parser to
see them, and extra stop strings. `detect_format(source)` picks the family.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import secrets
import string
from typing import Any, Sequence

from llamaserve.chat.output import (
    Cursor,
    Malformed,
    OutputParser,
    ReasoningMode,
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
    generic_messages,
    native_tool_prompt,
)

_ALNUM = string.ascii_letters + string.digits

Tool = dict[str, Any]


def _functions(tools: Sequence[Tool] | None) -> list[Tool]:
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
            fn = _functions(tools)[0]
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
        fns = _functions(tools)
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


def _alts(items: list[str]) -> str:
    return "( " + " | ".join(items) + " )"


class ContentOnly(ChatFormat):
    """No tool calls (tools are not parsed); reasoning in <think> is still extracted."""

    def body(self, p: Cursor, at_start: bool, prompt: str) -> Step:
        yield from self.plain_body(p, at_start)

    def _calls_rule(self, b, fns, parallel):
        raise ValueError("this chat format has no tool calls")


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
        one = _alts([self._json_call(b, fn) for fn in fns])
        return self._repeat(b, "call", f'"<tool_call>" {ws} {one} {ws} "</tool_call>"', ws, parallel)


class XmlCalls(ChatFormat):
    """Calls as XML with one element per parameter; values are raw text, typed by the tool's schema."""

    section_open, section_close = "<tool_call>", "</tool_call>"
    fn_open, fn_open_end, fn_close = "<function=", ">", "</function>"
    param_open, param_open_end, param_close = "<parameter=", ">", "</parameter>"
    newlines = True  # the family writes each tag and value on its own line

    @property
    def call_markers(self):  # type: ignore[override]
        return (self.section_open,)

    def section(self, p, marker):
        while True:
            yield from p.expect(self.fn_open)
            yield from self._function(p)
            yield from p.skip_ws()
            nxt = yield from p.peek_any((self.fn_open, self.section_close))
            if nxt is None:
                raise Malformed(f"expected {self.fn_open} or {self.section_close}")
            if nxt == self.section_close:
                p.pos += len(nxt)
                return

    def _function(self, p: Cursor) -> Step:
        name, _ = yield from p.read_until((self.fn_open_end,), max_len=128)
        name = name.strip()
        p.start_call(name)
        props = tool_parameters(p.tools.get(name, {})).get("properties") or {}
        value_ends = (self.param_close, self.param_open, self.fn_close)
        first = True
        while True:
            yield from p.skip_ws()
            which = yield from p.peek_any((self.param_open, self.fn_close))
            if which is None:
                raise Malformed(f"expected {self.param_open}...{self.param_open_end} or {self.fn_close}")
            p.pos += len(which)
            if which == self.fn_close:
                break
            pname, _ = yield from p.read_until((self.param_open_end,), max_len=128)
            first = yield from _xml_argument(p, pname.strip(), props, value_ends, first)
            yield from p.accept(self.param_close, skip_ws=False)
        p.args("{}" if first else "}")
        p.end_call()

    def _calls_rule(self, b, fns, parallel):
        ws = b.ws()
        nl = '"\\n"' if self.newlines else '""'
        calls = []
        for i, fn in enumerate(fns):
            params = []
            for pname, pschema, required in _parameters(fn):
                value = _xml_value_rule(b, pschema, self.param_close, self.newlines)
                rule = b.add(f"param-{i}-{len(params)}", f"{literal(self.param_open + pname + self.param_open_end)} {value} "
                                                         f"{literal(self.param_close)} {ws}")
                params.append(rule if required else rule + "?")
            calls.append(f"{literal(self.fn_open + fn['name'] + self.fn_open_end)} {ws} {' '.join(params)} {literal(self.fn_close)}")
        one = f"{literal(self.section_open)} {nl} {_alts(calls)} {ws} {literal(self.section_close)}"
        return self._repeat(b, "call", one, ws, parallel)


class Qwen3Coder(XmlCalls):
    """Qwen3-Coder, Qwen3.5, Nemotron 3 Nano, StepFun: <tool_call><function=NAME><parameter=P>value</parameter></function></tool_call>."""

    name = "qwen3-coder"
    preserved_tokens = ("<tool_call>", "</tool_call>", "<think>", "</think>")


class SeedOss(XmlCalls):
    """ByteDance Seed-OSS: <seed:tool_call><function=NAME><parameter=P>value</parameter></function></seed:tool_call>, <seed:think>."""

    name = "seed-oss"
    reasoning_start, reasoning_end = "<seed:think>", "</seed:think>"
    section_open, section_close = "<seed:tool_call>", "</seed:tool_call>"
    newlines = False
    preserved_tokens = ("<seed:tool_call>", "</seed:tool_call>", "<seed:think>", "</seed:think>")


class MiniMaxM2(XmlCalls):
    """MiniMax M2: <minimax:tool_call><invoke name="NAME"><parameter name="P">value</parameter></invoke></minimax:tool_call>."""

    name = "minimax-m2"
    section_open, section_close = "<minimax:tool_call>", "</minimax:tool_call>"
    fn_open, fn_open_end, fn_close = '<invoke name="', '">', "</invoke>"
    param_open, param_open_end = '<parameter name="', '">'
    newlines = False
    preserved_tokens = ("<minimax:tool_call>", "</minimax:tool_call>", "<think>", "</think>")


class GlmCalls(ChatFormat):
    """GLM 4.5 / 4.6 / 4.7, Laguna, Ling 3, Spark: <tool_call>NAME<arg_key>k</arg_key><arg_value>v</arg_value></tool_call>."""

    name = "glm"
    call_markers = ("<tool_call>",)
    preserved_tokens = ("<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>",
                        "<think>", "</think>")

    def __init__(self, source: str = ""):
        super().__init__(source)
        # GLM 4.5 / 4.6 put each tag on its own line, 4.7 writes them together
        self.newlines = bool(re.search(r"</arg_key>(\n|\\n)", source))

    def section(self, p, marker):
        name, _ = yield from p.read_until(("\n", "<arg_key>", "</tool_call>"), max_len=128, consume=False)
        name = name.strip()
        p.start_call(name)
        props = tool_parameters(p.tools.get(name, {})).get("properties") or {}
        first = True
        while True:
            yield from p.skip_ws()
            which = yield from p.peek_any(("<arg_key>", "</tool_call>"))
            if which is None:
                raise Malformed("expected <arg_key> or </tool_call>")
            p.pos += len(which)
            if which == "</tool_call>":
                break
            key, _ = yield from p.read_until(("</arg_key>",), max_len=128)
            yield from p.expect("<arg_value>")
            first = yield from _xml_argument(p, key.strip(), props, ("</arg_value>",), first)
            yield from p.expect("</arg_value>", skip_ws=False)
        p.args("{}" if first else "}")
        p.end_call()

    def _calls_rule(self, b, fns, parallel):
        ws = b.ws()
        nl = '"\\n"' if self.newlines else '""'
        calls = []
        for i, fn in enumerate(fns):
            params = []
            for pname, pschema, required in _parameters(fn):
                value = _xml_value_rule(b, pschema, "</arg_value>", False)
                rule = b.add(f"arg-{i}-{len(params)}", f'{literal("<arg_key>" + pname + "</arg_key>")} {nl} "<arg_value>" '
                                                       f'{value} "</arg_value>" {nl}')
                params.append(rule if required else rule + "?")
            calls.append(f"{literal(fn['name'])} {nl} {' '.join(params)}")
        return self._repeat(b, "call", f'"<tool_call>" {_alts(calls)} "</tool_call>"', ws, parallel)


def _parameters(fn: Tool) -> list[tuple[str, Any, bool]]:
    schema = tool_parameters(fn)
    required = set(schema.get("required") or ())
    return [(k, v if isinstance(v, dict) else {}, k in required) for k, v in (schema.get("properties") or {}).items()]


def _xml_argument(p: Cursor, name: str, props: dict[str, Any], ends: Sequence[str], first: bool) -> Step:
    """One argument written as raw text up to one of `ends`, into the arguments JSON; returns False (not first any more)."""
    p.args(("{" if first else ", ") + json.dumps(name, ensure_ascii=False) + ": ")
    if _is_string_schema(props.get(name)):
        p.args('"')
        yield from p.stream_json_string(ends, consume=False, strip_newline=True)
        p.args('"')
    else:
        raw, _ = yield from p.read_until(ends, max_len=1 << 30, consume=False)
        p.args(json.dumps(_xml_value(raw, props.get(name)), ensure_ascii=False))
    return False


def _xml_value_rule(b: GrammarBuilder, schema: Any, close: str, newlines: bool) -> str:
    nl = '"\\n"' if newlines else ""
    if _is_string_schema(schema):
        if isinstance(schema.get("enum"), list):
            return f"{nl} {_alts([literal(v) for v in schema['enum']])} {nl}"
        return b.until(close)
    ws = b.ws()
    return f"{ws} {b.schema(schema)} {ws}"


def _is_string_schema(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    t = schema.get("type")
    if t == "string":
        return True
    if isinstance(t, list):
        return "string" in t and not ({"object", "array", "number", "integer", "boolean"} & set(t))
    if t is None and "enum" in schema:
        return all(isinstance(v, str) for v in schema["enum"])
    return False


def _xml_value(raw: str, schema: Any) -> Any:
    """A non-string parameter value written as text: JSON if it parses, else the text itself."""
    if raw.startswith("\n"):
        raw = raw[1:]
    if raw.endswith("\n"):
        raw = raw[:-1]
    try:
        return json.loads(raw)
    except ValueError:
        return raw


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
                yield from _json_call_ahead(p, ("name", "type", "function"))
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
        yield from _python_tag_call(p)

    def _calls_rule(self, b, fns, parallel):
        ws = b.ws()
        extra = f'( "\\"type\\"" {ws} ":" {ws} "\\"function\\"" {ws} "," {ws} )? '
        one = _alts([self._json_call(b, fn, args_key="parameters", extra=extra) for fn in fns])
        return b.add("call", one)

    def _triggers(self, fns):
        return [Trigger("pattern", r'^\s*(\{)\s*"(?:type|name)"'), Trigger("word", "<|python_tag|>")]


def _python_tool_name(p: Cursor) -> str:
    for name in ("python", "code_interpreter", "ipython"):
        if name in p.tools:
            return name
    raise Malformed("the model wrote code to run, but no python tool was given")


def _json_call_ahead(p: Cursor, keys: Sequence[str]) -> Step:
    """A JSON object as the whole reply is a call only if it starts with one of `keys`; else it is an answer."""
    while not p.eof and ":" not in p.rest()[:64] and len(p.rest()) < 64:
        yield
    pattern = r'\{\s*"(?:' + "|".join(map(re.escape, keys)) + r')"\s*:'
    if not re.match(pattern, p.rest()):
        raise Malformed("not a tool call", silent=True)


_BUILTIN_CALL = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\.call\(")


def _python_tag_call(p: Cursor) -> Step:
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
        one = b.add("call", _alts(calls))
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
        return self._repeat(b, "call", f'"[TOOL_CALLS]" {_alts(calls)}', ws, parallel)


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


_DS_CALLS_BEGIN = "<｜tool▁calls▁begin｜>"
_DS_CALLS_END = "<｜tool▁calls▁end｜>"
_DS_CALL_BEGIN = "<｜tool▁call▁begin｜>"
_DS_CALL_END = "<｜tool▁call▁end｜>"
_DS_SEP = "<｜tool▁sep｜>"


class DeepSeekR1(ChatFormat):
    """DeepSeek R1 (and V3-0324): <｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\\n```json\\n{...}\\n```<｜tool▁call▁end｜>."""

    name = "deepseek-r1"
    call_markers = (_DS_CALLS_BEGIN, _DS_CALL_BEGIN)
    preserved_tokens = (_DS_CALLS_BEGIN, _DS_CALLS_END, _DS_CALL_BEGIN, _DS_CALL_END, _DS_SEP, "<think>", "</think>")

    def section(self, p, marker):
        opened = marker == _DS_CALL_BEGIN
        while True:
            if not opened:
                yield from p.expect(_DS_CALL_BEGIN)
            opened = False
            head, _ = yield from p.read_until((_DS_SEP,), max_len=128)
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
            yield from p.expect(_DS_CALL_END)
            yield from p.skip_ws()
            nxt = yield from p.peek_any((_DS_CALL_BEGIN, _DS_CALLS_END))
            if nxt == _DS_CALLS_END:
                p.pos += len(nxt)
                return
            if nxt is None:
                if p.eof and not p.rest():  # the closing marker may be cut off by the end of generation
                    return
                raise Malformed(f"expected {_DS_CALL_BEGIN} or {_DS_CALLS_END}")

    def example_call(self, name, arguments):
        return f"{_DS_CALLS_BEGIN}{_DS_CALL_BEGIN}function{_DS_SEP}{name}\n```json\n{arguments}\n```{_DS_CALL_END}{_DS_CALLS_END}"

    def _one_call(self, b: GrammarBuilder, fn: Tool) -> str:
        return (f'"{_DS_CALL_BEGIN}function{_DS_SEP}" {literal(fn["name"])} "\\n```json\\n" '
                f'{b.schema(tool_parameters(fn))} "\\n```{_DS_CALL_END}"')

    def _calls_rule(self, b, fns, parallel):
        one = b.add("call", _alts([self._one_call(b, fn) for fn in fns]))
        inner = f'{one} ( "\\n"? {one} )*' if parallel else one
        return f'"{_DS_CALLS_BEGIN}" {inner} "{_DS_CALLS_END}"'

    def _triggers(self, fns):
        return [Trigger("word", _DS_CALLS_BEGIN)]


class DeepSeekV31(DeepSeekR1):
    """DeepSeek V3.1: <｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{...}<｜tool▁call▁end｜>."""

    name = "deepseek-v3.1"

    def example_call(self, name, arguments):
        return f"{_DS_CALLS_BEGIN}{_DS_CALL_BEGIN}{name}{_DS_SEP}{arguments}{_DS_CALL_END}{_DS_CALLS_END}"

    def _one_call(self, b, fn):
        return f'"{_DS_CALL_BEGIN}" {literal(fn["name"])} "{_DS_SEP}" {b.schema(tool_parameters(fn))} "{_DS_CALL_END}"'


class FunctionaryV31(ChatFormat):
    """Functionary v3.1 (Llama 3.1): <function=NAME>{...}</function>, and <|python_tag|> code."""

    name = "functionary-v3.1"
    call_markers = ("<function=", "<|python_tag|>")
    preserved_tokens = ("<|python_tag|>",)
    additional_stops = ("<|eom_id|>",)
    reasoning_start = reasoning_end = None

    def section(self, p, marker):
        if marker == "<|python_tag|>":
            yield from _python_tag_call(p)
            return
        name, _ = yield from p.read_until((">",), max_len=128)
        p.start_call(name.strip())
        yield from p.call_arguments()
        p.end_call()
        yield from p.expect("</function>")

    def _calls_rule(self, b, fns, parallel):
        calls = [f'"<function=" {literal(fn["name"])} ">" {b.schema(tool_parameters(fn))} "</function>"' for fn in fns]
        return self._repeat(b, "call", _alts(calls), b.ws(), parallel)

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
        return self._repeat(b, "call", _alts(calls), '">>>"', parallel)

    def _triggers(self, fns):
        names = "|".join(re.escape(fn["name"]) for fn in fns)
        return [Trigger("pattern", f"^((?:{names})\\n)"), Trigger("pattern", f">>>((?:{names})\\n)")]


class CommandR7B(ChatFormat):
    """Command R7B: <|START_THINKING|>...<|END_THINKING|>, <|START_ACTION|>[{"tool_call_id", "tool_name", "parameters"}]<|END_ACTION|>."""

    name = "command-r7b"
    reasoning_start, reasoning_end = "<|START_THINKING|>", "<|END_THINKING|>"
    call_markers = ("<|START_ACTION|>",)
    strip_markers = ("<|START_RESPONSE|>", "<|END_RESPONSE|>")
    preserved_tokens = ("<|START_ACTION|>", "<|END_ACTION|>", "<|START_RESPONSE|>", "<|END_RESPONSE|>",
                        "<|START_THINKING|>", "<|END_THINKING|>")

    def section(self, p, marker):
        yield from p.call_array(name_keys=("tool_name",), args_keys=("parameters",))
        yield from p.skip_ws()
        if not (p.eof and not p.rest()):  # the end marker may be cut off by the end of generation
            yield from p.expect("<|END_ACTION|>")

    def _calls_rule(self, b, fns, parallel):
        ws = b.ws()
        extra = f'"\\"tool_call_id\\"" {ws} ":" {ws} "\\"" [0-9]{{1,3}} "\\"" {ws} "," {ws} '
        one = b.add("call", _alts([self._json_call(b, fn, "tool_name", "parameters", extra) for fn in fns]))
        inner = f'{one} ( {ws} "," {ws} {one} )*' if parallel else one
        return f'"<|START_ACTION|>" {ws} "[" {ws} {inner} {ws} "]" {ws} "<|END_ACTION|>"'


class JsonListCalls(ChatFormat):
    """A marker, then the calls as a JSON array of {"name": ..., "arguments": ...} (and an optional closing marker)."""

    open_marker = ""
    close_marker: str | None = None

    @property
    def call_markers(self):  # type: ignore[override]
        return (self.open_marker,)

    def section(self, p, marker):
        yield from p.call_array()
        if self.close_marker:
            yield from p.expect(self.close_marker)

    def _calls_rule(self, b, fns, parallel):
        ws = b.ws()
        one = b.add("call", _alts([self._json_call(b, fn) for fn in fns]))
        inner = f'{one} ( {ws} "," {ws} {one} )*' if parallel else one
        close = f" {ws} {literal(self.close_marker)}" if self.close_marker else ""
        return f'{literal(self.open_marker)} {ws} "[" {ws} {inner} {ws} "]"{close}'


class Granite(JsonListCalls):
    """Granite 3.x: <|tool_call|>[{"name": ..., "arguments": ...}]; thoughts in <think>, the answer in <response>."""

    name = "granite"
    open_marker = "<|tool_call|>"
    strip_markers = ("<response>", "</response>")
    preserved_tokens = ("<|tool_call|>", "<think>", "</think>", "<response>", "</response>")


class NemotronV2(JsonListCalls):
    """NVIDIA Nemotron Nano v2: <TOOLCALL>[{"name": ..., "arguments": ...}]</TOOLCALL>."""

    name = "nemotron-v2"
    open_marker, close_marker = "<TOOLCALL>", "</TOOLCALL>"
    preserved_tokens = ("<TOOLCALL>", "</TOOLCALL>", "<think>", "</think>")


class Apriel(JsonListCalls):
    """Apriel 1.5 / 1.6: <tool_calls>[...]</tool_calls>; thoughts from "Here are my reasoning steps:" to [BEGIN FINAL RESPONSE]."""

    name = "apriel"
    open_marker, close_marker = "<tool_calls>", "</tool_calls>"
    reasoning_start, reasoning_end = "Here are my reasoning steps:", "[BEGIN FINAL RESPONSE]"
    strip_markers = ("[END FINAL RESPONSE]", "<|end|>")


class FireFunctionV2(ChatFormat):
    """FireFunction v2: functools[{"name": ..., "arguments": ...}, ...]."""

    name = "firefunction-v2"
    call_markers = ("functools[",)
    reasoning_start = reasoning_end = None

    def section(self, p, marker):
        yield from p.call_array(opened=True)

    def _calls_rule(self, b, fns, parallel):
        ws = b.ws()
        one = b.add("call", _alts([self._json_call(b, fn) for fn in fns]))
        inner = f'{one} ( {ws} "," {ws} {one} )*' if parallel else one
        return f'" functools[" {ws} {inner} {ws} "]"'

    def _triggers(self, fns):
        return [Trigger("word", " functools[")]


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
        return b.add("call", f'" to=functions." {_alts(calls)}')

    def grammar(self, tools, schema_to_gbnf, *, required, parallel=True, prompt=""):
        g = super().grammar(tools, schema_to_gbnf, required=required, parallel=parallel, prompt=prompt)
        if not required:
            return g
        # a required call may still be preceded by thoughts, and is then its own message
        b = GrammarBuilder(schema_to_gbnf)
        call = self._calls_rule(b, _functions(tools), parallel)
        thoughts = f'"<|channel|>analysis<|message|>" {b.until("<|end|>")} "<|end|>" "{_H_START}"'
        b.add("root", f'( {thoughts} )? "<|channel|>commentary"? {call}')
        return ToolGrammar(b.text(), lazy=False)

    def _triggers(self, fns):
        return [Trigger("word", " to=functions.")]


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
            yield from _json_call_ahead(p, ("tool_call", "tool_calls"))
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
        one = b.add("call", _alts([self._json_call(b, fn) for fn in fns]))
        single = f'"\\"tool_call\\"" {ws} ":" {ws} {one}'
        many = f'"\\"tool_calls\\"" {ws} ":" {ws} "[" {ws} {one} ( {ws} "," {ws} {one} )* {ws} "]"'
        return f'"{{" {ws} {_alts([single, many]) if parallel else single} {ws} "}}"'

    def _triggers(self, fns):
        return [Trigger("pattern", r'^\s*(\{)\s*"tool_calls?"')]


FORMATS: dict[str, type[ChatFormat]] = {
    cls.name: cls for cls in (
        ContentOnly, Hermes, Qwen3Coder, SeedOss, MiniMaxM2, GlmCalls, Llama3, MistralNemo, MistralSmall, DeepSeekR1,
        DeepSeekV31, FunctionaryV31, FunctionaryV32, CommandR7B, Granite, NemotronV2, Apriel, FireFunctionV2, GptOss,
        Generic,
    )
}


def detect_format(source: str) -> ChatFormat:
    """The family of a chat template, from markers in its source; templates that are none of them get Generic."""
    s = source
    if "<|channel|>" in s:
        return GptOss(s)
    if ">>>all" in s:
        return FunctionaryV32(s)
    if "<|START_ACTION|>" in s and "<|START_TEXT|>" not in s:
        return CommandR7B(s)
    if "[TOOL_CALLS]" in s:
        return MistralSmall(s) if "[ARGS]" in s else MistralNemo(s)
    if _DS_CALLS_BEGIN in s:
        return DeepSeekV31(s) if re.search(r"name'\]\s*\+\s*'" + re.escape(_DS_SEP), s) else DeepSeekR1(s)
    if "<tool_call>" in s and "<function=" in s and "<parameter=" in s:
        return Qwen3Coder(s)
    if "<seed:tool_call>" in s:
        return SeedOss(s)
    if "<minimax:tool_call>" in s and "<invoke name=" in s:
        return MiniMaxM2(s)
    if "<tool_call>" in s and "<arg_key>" in s:
        return GlmCalls(s)
    if "<TOOLCALL>" in s:
        return NemotronV2(s)
    if "<tool_calls>[" in s:
        return Apriel(s)
    if "<|tool_call|>" in s:
        return Granite(s)
    if "functools[" in s:
        return FireFunctionV2(s)
    if "<function=" in s and "<|python_tag|>" in s:
        return FunctionaryV31(s)
    if "<tool_call>" in s and not any(x in s for x in ("<arg_key>", "<invoke", "<function=", "<tool_calls>")):
        return Hermes(s)
    if "<|start_header_id|>" in s and ("<|python_tag|>" in s or '"parameters": dictionary' in s):
        return Llama3(s)
    return Generic(s)
