"""GBNF for tool calls: the pieces formats build their call grammars from, and what the engine receives.

A format writes its call syntax (markers, separators) around each tool's
argument grammar, which comes from the JSON Schema converter. Grammars of
several tools are merged into one by prefixing each one's rule names.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

SchemaToGbnf = Callable[[Any], str]

_WORD = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Trigger:
    """When a lazy grammar engages.

    word: a literal; the engine may use a token trigger when it is one token,
        else the escaped literal as a pattern. The grammar sees the text from
        the word on.
    pattern: a regex (ECMAScript, as libllama's std::regex) searched in the
        output; the grammar sees the text from its first capture group on.
    """

    kind: Literal["word", "pattern"]
    value: str

    def regex(self) -> str:
        return re.escape(self.value) if self.kind == "word" else self.value


@dataclass(frozen=True)
class ToolGrammar:
    """The grammar for a tool-calling request.

    lazy: the grammar constrains only from a trigger on (tool_choice auto);
    otherwise it constrains the whole output (required, or a named tool).
    """

    gbnf: str
    lazy: bool
    triggers: tuple[Trigger, ...] = ()

    def trigger_words(self) -> list[str]:
        return [t.value for t in self.triggers if t.kind == "word"]

    def trigger_patterns(self) -> list[str]:
        return [t.value for t in self.triggers if t.kind == "pattern"]


def literal(text: str) -> str:
    """A GBNF string literal matching exactly `text`."""
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def json_literal(value: str) -> str:
    """A GBNF literal of the JSON encoding of a string (a tool name as a JSON value)."""
    return literal(json.dumps(value, ensure_ascii=False))


def _char_class_escape(ch: str) -> str:
    if ch in "]\\^-[":
        return "\\" + ch
    if ch == "\n":
        return "\\n"
    if ch == "\r":
        return "\\r"
    if ch == "\t":
        return "\\t"
    return ch


def rename_rules(gbnf: str, prefix: str) -> str:
    """The same grammar with every rule name prefixed, so several can share one grammar text."""
    out: list[str] = []
    i, n = 0, len(gbnf)
    while i < n:
        c = gbnf[i]
        if c == "#":
            j = gbnf.find("\n", i)
            j = n if j < 0 else j
            out.append(gbnf[i:j])
            i = j
        elif c == '"' or c == "[":
            close = '"' if c == '"' else "]"
            j = i + 1
            while j < n and gbnf[j] != close:
                j += 2 if gbnf[j] == "\\" else 1
            out.append(gbnf[i:j + 1])
            i = j + 1
        elif c == "{":  # repetition bounds {m,n}: digits, not names
            j = gbnf.find("}", i)
            j = n - 1 if j < 0 else j
            out.append(gbnf[i:j + 1])
            i = j + 1
        else:
            m = _WORD.match(gbnf, i)
            if m:
                out.append(prefix + m.group())
                i = m.end()
            else:
                out.append(c)
                i += 1
    return "".join(out)


@dataclass
class GrammarBuilder:
    """Collects rules; `text()` is the finished grammar with `root` first."""

    schema_to_gbnf: SchemaToGbnf
    rules: dict[str, str] = field(default_factory=dict)
    imported: list[str] = field(default_factory=list)
    _schemas: dict[str, str] = field(default_factory=dict)
    _untils: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, body: str) -> str:
        self.rules[name] = body
        return name

    def schema(self, schema: Any) -> str:
        """The rule name of a JSON value matching `schema` (converted once per distinct schema)."""
        key = json.dumps(schema, sort_keys=True)
        if key not in self._schemas:
            prefix = f"s{len(self._schemas)}-"
            self.imported.append(rename_rules(self.schema_to_gbnf(schema), prefix))
            self._schemas[key] = prefix + "root"
        return self._schemas[key]

    def ws(self) -> str:
        # bounded, so that a weak model cannot loop on whitespace forever
        return self.add("ws", "[ \\t\\n\\r]{0,16}")

    def until(self, stop: str) -> str:
        """A rule for any text that does not contain `stop` (the usual prefix-exclusion construction)."""
        if stop in self._untils:
            return self._untils[stop]
        name = self._untils[stop] = f"until-{len(self._untils)}"
        alts = []
        for k in range(len(stop)):
            alts.append((literal(stop[:k]) + " " if k else "") + "[^" + _char_class_escape(stop[k]) + "]")
        return self.add(name, "( " + " | ".join(alts) + " )*")

    def text(self) -> str:
        lines = [f"root ::= {self.rules['root']}"]
        lines += [f"{k} ::= {v}" for k, v in self.rules.items() if k != "root"]
        return "\n".join(lines + self.imported) + "\n"


def tool_parameters(tool: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a tool's arguments (an object; a missing schema allows any object)."""
    params = tool.get("parameters")
    if not isinstance(params, dict) or not params:
        return {"type": "object"}
    return params
