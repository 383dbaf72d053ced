"""Reading GBNF text back into expressions, to say what is wrong with a grammar that libllama rejected
(libllama itself only reports "failed"): `parse_gbnf` and `grammar_problem`.
"""

from __future__ import annotations

from llamaserve.grammar.analysis import left_recursive_rule
from llamaserve.grammar.expr import (
    MAX_CODEPOINT, REPETITION_LIMIT, Alt, Chars, Expr, Lit, Ref, Rep, Seq, Token, alt, complement_ranges,
    normalize_ranges,
)


class GbnfError(ValueError):
    def __init__(self, message: str, text: str, pos: int):
        line = text.count("\n", 0, pos) + 1
        col = pos - (text.rfind("\n", 0, pos) + 1) + 1
        super().__init__(f"{message} at line {line}, column {col}")
        self.line, self.col = line, col


def _is_word(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "-")


class _Reader:
    """llama.cpp's GBNF syntax: rules `name ::= alternatives`, literals, [classes], (groups), ., <tokens>,
    and the operators * + ? {m} {m,} {m,n}; `#` comments; newlines allowed inside groups."""

    def __init__(self, text: str):
        self.s = text
        self.i = 0
        self.rules: dict[str, Expr] = {}
        self.order: list[str] = []
        self.refs: dict[str, int] = {}  # first use of each referenced name -> position

    def fail(self, msg: str, pos: int | None = None):
        raise GbnfError(msg, self.s, self.i if pos is None else pos)

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def space(self, newline_ok: bool) -> None:
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == "#":
                while self.i < len(self.s) and self.s[self.i] not in "\r\n":
                    self.i += 1
            elif c in " \t" or newline_ok and c in "\r\n":
                self.i += 1
            else:
                break

    def name(self) -> str:
        start = self.i
        while self.i < len(self.s) and _is_word(self.s[self.i]):
            self.i += 1
        if self.i == start:
            self.fail("expecting a rule name")
        return self.s[start:self.i]

    def read(self) -> dict[str, Expr]:
        self.space(True)
        while self.i < len(self.s):
            name = self.name()
            self.space(False)
            if not self.s.startswith("::=", self.i):
                self.fail(f"expecting '::=' after rule name '{name}'")
            self.i += 3
            self.space(True)
            e = self.alternates(nested=False)
            if name in self.rules:
                e = alt(self.rules[name], e)  # libllama appends alternatives of a rule defined twice
            else:
                self.order.append(name)
            self.rules[name] = e
            c = self.peek()
            if c == "\r":
                self.i += 2 if self.peek(1) == "\n" else 1
            elif c == "\n":
                self.i += 1
            elif c:
                self.fail(f"unexpected {c!r}, expecting a newline or the end of the rule")
            self.space(True)
        return self.rules

    def alternates(self, nested: bool) -> Expr:
        options = [self.sequence(nested)]
        while self.peek() == "|":
            self.i += 1
            self.space(True)
            options.append(self.sequence(nested))
        return Alt(tuple(options)) if len(options) > 1 else options[0]

    def sequence(self, nested: bool) -> Expr:
        items: list[Expr] = []
        while self.i < len(self.s):
            c = self.s[self.i]
            start = self.i
            if c == '"':
                self.i += 1
                text = []
                while self.peek() != '"':
                    if not self.peek():
                        self.fail("unterminated string literal", start)
                    text.append(self.char())
                self.i += 1
                items.append(Lit("".join(text)))
            elif c == "[":
                self.i += 1
                negate = self.peek() == "^"
                if negate:
                    self.i += 1
                rs = []
                while self.peek() != "]":
                    if not self.peek():
                        self.fail("unterminated character class", start)
                    lo = ord(self.char())
                    hi = lo
                    if self.peek() == "-" and self.peek(1) not in ("]", ""):
                        self.i += 1
                        hi = ord(self.char())
                    rs.append((lo, hi))
                self.i += 1
                norm = normalize_ranges(rs)
                items.append(Chars(complement_ranges(norm) if negate else norm))
            elif c in "<!":
                end = self.s.find(">", self.i)
                if end < 0 or "\n" in self.s[self.i:end]:
                    self.fail("unterminated token reference, expecting '>'")
                self.i = end + 1
                items.append(Token(self.s[start:self.i]))
            elif _is_word(c):
                name = self.name()
                self.refs.setdefault(name, start)
                items.append(Ref(name))
            elif c == "(":
                self.i += 1
                self.space(True)
                inner = self.alternates(nested=True)
                if self.peek() != ")":
                    self.fail("expecting ')' to close the group opened", start)
                self.i += 1
                items.append(inner if not isinstance(inner, Seq) or len(inner.items) != 1 else inner.items[0])
            elif c == ".":
                self.i += 1
                items.append(Chars(((0, MAX_CODEPOINT),)))
            elif c in "*+?{":
                if not items:
                    self.fail(f"'{c}' has nothing before it to repeat")
                self.i += 1
                if c == "*":
                    lo, hi = 0, None
                elif c == "+":
                    lo, hi = 1, None
                elif c == "?":
                    lo, hi = 0, 1
                else:
                    lo, hi = self.counts()
                items[-1] = Rep(items[-1], lo, hi)
            else:
                break
            self.space(nested)
        return Seq(tuple(items)) if len(items) != 1 else items[0]

    def counts(self) -> tuple[int, int | None]:
        self.space(True)
        lo = self.integer()
        self.space(True)
        hi: int | None = lo
        if self.peek() == ",":
            self.i += 1
            self.space(True)
            hi = self.integer() if self.peek().isdigit() else None
            self.space(True)
        if self.peek() != "}":
            self.fail("expecting '}' to close a repetition count")
        self.i += 1
        if lo > REPETITION_LIMIT:
            self.fail(f"a repetition count of {lo} exceeds libllama's limit of {REPETITION_LIMIT}")
        if hi is not None and hi < lo:
            self.fail(f"repetition {{{lo},{hi}}} has its maximum below its minimum")
        return lo, hi

    def integer(self) -> int:
        start = self.i
        while self.peek().isdigit():
            self.i += 1
        if start == self.i:
            self.fail("expecting a number in a repetition count")
        return int(self.s[start:self.i])

    def char(self) -> str:
        c = self.s[self.i]
        if c != "\\":
            self.i += 1
            return c
        nxt = self.peek(1)
        simple = {"t": "\t", "r": "\r", "n": "\n", "\\": "\\", '"': '"', "[": "[", "]": "]", "-": "-"}
        if nxt in simple:
            self.i += 2
            return simple[nxt]
        size = {"x": 2, "u": 4, "U": 8}.get(nxt)
        if size is None:
            self.fail(f"unknown escape '\\{nxt}'")
        digits = self.s[self.i + 2:self.i + 2 + size]
        if len(digits) != size or any(d not in "0123456789abcdefABCDEF" for d in digits):
            self.fail(f"'\\{nxt}' needs {size} hex digits")
        self.i += 2 + size
        cp = int(digits, 16)
        if cp > MAX_CODEPOINT:
            self.fail(f"code point U+{cp:X} is out of range")
        return chr(cp)


def parse_gbnf(text: str) -> dict[str, Expr]:
    """Read GBNF text into rules; raises GbnfError (with line and column) on a syntax error."""
    return _Reader(text).read()


def grammar_problem(text: str, root: str = "root") -> str | None:
    """What makes libllama refuse this grammar, in words; None if nothing is found."""
    reader = _Reader(text)
    try:
        rules = reader.read()
    except GbnfError as exc:
        return str(exc)
    if not rules:
        return "the grammar is empty"
    for name, pos in reader.refs.items():
        if name not in rules:
            return str(GbnfError(f"undefined rule '{name}'", text, pos))
    if root not in rules:
        return f"the grammar has no '{root}' rule"
    rec = left_recursive_rule(rules)
    if rec is not None:
        return f"rule '{rec}' is left-recursive (it can reach itself before matching any character)"
    return None
