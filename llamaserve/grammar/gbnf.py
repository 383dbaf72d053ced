"""GBNF grammars as values: a small expression tree, its text form, and a reader for that text.

The converters build `Expr` trees (literals, character sets, rule references,
sequences, alternatives, repetitions); `Grammar` names rules, removes branches
that can never finish, and writes GBNF that libllama's grammar parser accepts.
`parse_gbnf` / `grammar_problem` read GBNF back, to say what is wrong with a
grammar that libllama rejected (libllama itself only reports "failed").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Union

MAX_CODEPOINT = 0x10FFFF
# libllama expands x{m,n} into n rules and refuses (or, for the max, silently drops) counts above this
REPETITION_LIMIT = 2000


# --- expressions ---

@dataclass(frozen=True)
class Lit:
    """A literal string (the characters as generated, not escaped)."""
    text: str


@dataclass(frozen=True)
class Chars:
    """One character from a set of inclusive code point ranges (sorted, disjoint, non-adjacent)."""
    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Ref:
    name: str


@dataclass(frozen=True)
class Seq:
    items: tuple


@dataclass(frozen=True)
class Alt:
    items: tuple


@dataclass(frozen=True)
class Rep:
    item: "Expr"
    min: int
    max: int | None  # None = unbounded


@dataclass(frozen=True)
class Token:
    """A token reference (<[id]> or <text>, optionally negated with !); only read, never built."""
    text: str


Expr = Union[Lit, Chars, Ref, Seq, Alt, Rep, Token]

EMPTY = Seq(())   # matches the empty string
NEVER = Alt(())   # matches nothing


def normalize_ranges(ranges: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[list[int]] = []
    for lo, hi in sorted(r for r in ranges if r[0] <= r[1]):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((lo, hi) for lo, hi in out)


def complement_ranges(ranges: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    out = []
    prev = 0
    for lo, hi in ranges:
        if lo > prev:
            out.append((prev, lo - 1))
        prev = hi + 1
    if prev <= MAX_CODEPOINT:
        out.append((prev, MAX_CODEPOINT))
    return tuple(out)


def intersect_ranges(a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def chars(*ranges: tuple[int, int] | str) -> Expr:
    """A character set from (lo, hi) code point pairs and/or strings of single characters."""
    rs: list[tuple[int, int]] = []
    for r in ranges:
        if isinstance(r, str):
            rs.extend((ord(c), ord(c)) for c in r)
        else:
            rs.append(r)
    norm = normalize_ranges(rs)
    return Chars(norm) if norm else NEVER


def seq(*items: Expr) -> Expr:
    out: list[Expr] = []
    for item in items:
        parts = item.items if isinstance(item, Seq) else (item,)
        for p in parts:
            if p == NEVER:
                return NEVER
            if isinstance(p, Lit) and out and isinstance(out[-1], Lit):
                out[-1] = Lit(out[-1].text + p.text)
            elif p != EMPTY and p != Lit(""):
                out.append(p)
    if len(out) == 1:
        return out[0]
    return Seq(tuple(out))


def alt(*items: Expr) -> Expr:
    flat: list[Expr] = []
    for item in items:
        for p in item.items if isinstance(item, Alt) else (item,):
            if p == Lit(""):
                p = EMPTY
            if p not in flat:
                flat.append(p)
    # single characters fold into one set: fewer alternatives for the grammar engine to track
    singles = [p for p in flat if isinstance(p, Chars) or isinstance(p, Lit) and len(p.text) == 1]
    if len(singles) > 1:
        merged = chars(*[r for p in singles for r in (p.ranges if isinstance(p, Chars) else (p.text,))])
        first = flat.index(singles[0])
        flat = [p for p in flat if p not in singles]
        flat.insert(first, merged)
    if len(flat) == 1:
        return flat[0]
    return Alt(tuple(flat))


def rep(item: Expr, lo: int, hi: int | None) -> Expr:
    if hi == 0 or item == EMPTY:
        return EMPTY
    if item == NEVER:
        return EMPTY if lo == 0 else NEVER
    if lo == 1 and hi == 1:
        return item
    if isinstance(item, Lit) and hi is not None and lo == hi and lo * len(item.text) <= 16:
        return Lit(item.text * lo)
    return Rep(item, lo, hi)


def opt(item: Expr) -> Expr:
    return rep(item, 0, 1)


def children(e: Expr) -> tuple:
    if isinstance(e, (Seq, Alt)):
        return e.items
    if isinstance(e, Rep):
        return (e.item,)
    return ()


def map_refs(e: Expr, fn) -> Expr:
    """Rebuild `e` with every Ref replaced by fn(ref), simplifying as it goes."""
    if isinstance(e, Ref):
        return fn(e)
    if isinstance(e, Seq):
        return seq(*[map_refs(x, fn) for x in e.items])
    if isinstance(e, Alt):
        return alt(*[map_refs(x, fn) for x in e.items])
    if isinstance(e, Rep):
        return rep(map_refs(e.item, fn), e.min, e.max)
    return e


# --- analysis ---

def nullable_rules(rules: dict[str, Expr]) -> set[str]:
    """Rules that can match the empty string."""
    nullable: set[str] = set()

    def can_be_empty(e: Expr) -> bool:
        if isinstance(e, Ref):
            return e.name in nullable
        if isinstance(e, Seq):
            return all(can_be_empty(x) for x in e.items)
        if isinstance(e, Alt):
            return any(can_be_empty(x) for x in e.items)
        if isinstance(e, Rep):
            return e.min == 0 or can_be_empty(e.item)
        return isinstance(e, Lit) and e.text == ""

    changed = True
    while changed:
        changed = False
        for name, e in rules.items():
            if name not in nullable and can_be_empty(e):
                nullable.add(name)
                changed = True
    return nullable


def expr_nullable(e: Expr, nullable: set[str]) -> bool:
    if isinstance(e, Ref):
        return e.name in nullable
    if isinstance(e, Seq):
        return all(expr_nullable(x, nullable) for x in e.items)
    if isinstance(e, Alt):
        return any(expr_nullable(x, nullable) for x in e.items)
    if isinstance(e, Rep):
        return e.min == 0 or expr_nullable(e.item, nullable)
    return isinstance(e, Lit) and e.text == ""


def productive_rules(rules: dict[str, Expr]) -> set[str]:
    """Rules that can match at least one finite string."""
    productive: set[str] = set()

    def finite(e: Expr) -> bool:
        if isinstance(e, Ref):
            return e.name in productive
        if isinstance(e, Seq):
            return all(finite(x) for x in e.items)
        if isinstance(e, Alt):
            return any(finite(x) for x in e.items)
        if isinstance(e, Rep):
            return e.min == 0 or finite(e.item)
        return True

    changed = True
    while changed:
        changed = False
        for name, e in rules.items():
            if name not in productive and finite(e):
                productive.add(name)
                changed = True
    return productive


def left_edge_refs(e: Expr, nullable: set[str]) -> set[str]:
    """Rules that may be entered before any character of `e` is matched."""
    out: set[str] = set()
    if isinstance(e, Ref):
        out.add(e.name)
    elif isinstance(e, Seq):
        for x in e.items:
            out |= left_edge_refs(x, nullable)
            if not expr_nullable(x, nullable):
                break
    elif isinstance(e, Alt):
        for x in e.items:
            out |= left_edge_refs(x, nullable)
    elif isinstance(e, Rep):
        out |= left_edge_refs(e.item, nullable)
    return out


def left_recursive_rule(rules: dict[str, Expr]) -> str | None:
    """A rule that can reach itself without matching a character (libllama rejects those)."""
    nullable = nullable_rules(rules)
    edges = {name: left_edge_refs(e, nullable) & rules.keys() for name, e in rules.items()}
    for start in rules:
        seen: set[str] = set()
        stack = list(edges[start])
        while stack:
            n = stack.pop()
            if n == start:
                return start
            if n not in seen:
                seen.add(n)
                stack.extend(edges.get(n, ()))
    return None


def empty_loop(rules: dict[str, Expr]) -> str | None:
    """A rule holding an unbounded repetition of something that can be empty (it would never advance)."""
    nullable = nullable_rules(rules)

    def find(e: Expr) -> bool:
        if isinstance(e, Rep) and e.max is None and expr_nullable(e.item, nullable):
            return True
        return any(find(c) for c in children(e))

    for name, e in rules.items():
        if find(e):
            return name
    return None


# --- text form ---

_RULE_NAME_BAD = re.compile(r"[^A-Za-z0-9-]+")


def rule_name(hint: str) -> str:
    """A valid GBNF rule name ([A-Za-z0-9-]+) resembling `hint`."""
    name = _RULE_NAME_BAD.sub("-", hint).strip("-")
    return name or "r"


_LIT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CLASS_ESCAPES = {"]": "\\]", "-": "\\-", "\\": "\\\\", "[": "\\[", "^": "\\x5E", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _char_code(cp: int, escapes: dict[str, str]) -> str:
    c = chr(cp)
    if c in escapes:
        return escapes[c]
    if cp < 0x20 or cp == 0x7F:
        return f"\\x{cp:02X}"
    if cp > 0x7E:  # keep grammar text ASCII: readable in logs whatever the terminal
        return f"\\u{cp:04X}" if cp <= 0xFFFF else f"\\U{cp:08X}"
    return c


def format_literal(text: str) -> str:
    return '"' + "".join(_char_code(ord(c), _LIT_ESCAPES) for c in text) + '"'


def format_chars(ranges: tuple[tuple[int, int], ...]) -> str:
    def body(rs):
        parts = []
        for lo, hi in rs:
            if lo == hi:
                parts.append(_char_code(lo, _CLASS_ESCAPES))
            elif hi == lo + 1:
                parts.append(_char_code(lo, _CLASS_ESCAPES) + _char_code(hi, _CLASS_ESCAPES))
            else:
                parts.append(_char_code(lo, _CLASS_ESCAPES) + "-" + _char_code(hi, _CLASS_ESCAPES))
        return "".join(parts)

    positive = body(ranges)
    negative = body(complement_ranges(ranges))
    if len(negative) < len(positive) and negative:
        return "[^" + negative + "]"
    return "[" + positive + "]"


def _is_atom(e: Expr) -> bool:
    return isinstance(e, (Lit, Chars, Ref, Token))


def format_expr(e: Expr) -> str:
    if isinstance(e, Lit):
        return format_literal(e.text)
    if isinstance(e, Chars):
        return format_chars(e.ranges)
    if isinstance(e, Ref):
        return e.name
    if isinstance(e, Token):
        return e.text
    if isinstance(e, Seq):
        if not e.items:
            return '""'
        return " ".join(format_expr(x) if not isinstance(x, Alt) else "(" + format_expr(x) + ")" for x in e.items)
    if isinstance(e, Alt):
        if not e.items:
            raise ValueError("an empty alternation has no GBNF form")
        rest = [x for x in e.items if x != EMPTY]
        if len(rest) < len(e.items):
            inner = rest[0] if len(rest) == 1 else Alt(tuple(rest))
            return _group(inner) + "?"
        return " | ".join(format_expr(x) for x in e.items)
    if isinstance(e, Rep):
        inner = _group(e.item)
        if e.min == 0 and e.max == 1:
            return inner + "?"
        if e.min == 0 and e.max is None:
            return inner + "*"
        if e.min == 1 and e.max is None:
            return inner + "+"
        if e.max is None:
            return f"{inner}{{{e.min},}}"
        if e.min == e.max:
            return f"{inner}{{{e.min}}}"
        return f"{inner}{{{e.min},{e.max}}}"
    raise TypeError(f"not a grammar expression: {e!r}")


def _group(e: Expr) -> str:
    return format_expr(e) if _is_atom(e) else "(" + format_expr(e) + ")"


class Grammar:
    """Named rules under construction; `text()` writes them out, root first."""

    def __init__(self, reserved: Iterable[str] = ()):
        self.rules: dict[str, Expr | None] = {}  # None: reserved, defined later (recursion)
        self._by_expr: dict[Expr, str] = {}
        self._taken = set(reserved)

    def fresh(self, hint: str) -> str:
        """Reserve a new rule name resembling `hint`."""
        base = rule_name(hint)
        name, i = base, 1
        while name in self.rules or name in self._taken:
            name = f"{base}-{i}"
            i += 1
        self.rules[name] = None
        return name

    def define(self, name: str, e: Expr) -> Ref:
        self.rules[name] = e
        self._by_expr.setdefault(e, name)
        return Ref(name)

    def add(self, hint: str, e: Expr) -> Ref:
        """A rule for `e` (an existing one if the same expression already has a name)."""
        if isinstance(e, Ref):
            return e
        known = self._by_expr.get(e)
        if known is not None:
            return Ref(known)
        return self.define(self.fresh(hint), e)

    def fixed(self, name: str, e: Expr) -> Ref:
        """A rule with a well-known name (space, string, ...), defined once."""
        if self.rules.get(name) is None:
            self._taken.discard(name)
            self.rules[name] = e
            self._by_expr.setdefault(e, name)
        return Ref(name)

    def finish(self, root: str = "root") -> dict[str, Expr]:
        """Drop branches that can never finish and rules root cannot reach; hoist complex repeated groups.

        Returns the final rules. Raises ValueError naming the problem if root itself can never finish."""
        rules = {n: e for n, e in self.rules.items() if e is not None}
        productive = productive_rules(rules)
        if root not in productive:
            raise ValueError("no finite value matches")
        rules = {n: map_refs(e, lambda r: r if r.name in productive else NEVER) for n, e in rules.items() if n in productive}
        # libllama counts the rules a repeated group creates against its limit: give such groups a name
        out: dict[str, Expr] = {}
        for name in list(rules):
            out[name] = self._hoist(name, rules[name], rules)
        for name, e in rules.items():  # rules created while hoisting
            out.setdefault(name, e)
        return _reachable(_fold_aliases(out), root)

    def _hoist(self, name: str, e: Expr, rules: dict[str, Expr]) -> Expr:
        if isinstance(e, Rep):
            item = self._hoist(name, e.item, rules)
            if not _is_atom(item) and any(not _is_atom(c) for c in children(item)):
                known = self._by_expr.get(item)
                if known is None or known not in rules:
                    known = self.fresh(name + "-part")
                    self._by_expr[item] = known
                    rules[known] = item
                item = Ref(known)
            return Rep(item, e.min, e.max)
        if isinstance(e, Seq):
            return Seq(tuple(self._hoist(name, x, rules) for x in e.items))
        if isinstance(e, Alt):
            return Alt(tuple(self._hoist(name, x, rules) for x in e.items))
        return e


def _fold_aliases(rules: dict[str, Expr]) -> dict[str, Expr]:
    """`a ::= b` where only `a` uses `b`: give b's definition to a (so `root` is the schema's own rule)."""
    changed = True
    while changed:
        changed = False
        for a in list(rules):
            e = rules.get(a)
            if not isinstance(e, Ref) or e.name == a or e.name not in rules:
                continue
            b = e.name
            if sum(_count_refs(x, b) for n, x in rules.items() if n != b) == 1:
                body = rules.pop(b)
                rules[a] = map_refs(body, lambda r: Ref(a) if r.name == b else r)
                changed = True
    return rules


def _count_refs(e: Expr, name: str) -> int:
    if isinstance(e, Ref):
        return int(e.name == name)
    return sum(_count_refs(c, name) for c in children(e))


def _reachable(rules: dict[str, Expr], root: str) -> dict[str, Expr]:
    seen = [root]
    todo = [root]
    while todo:
        n = todo.pop()
        stack = [rules[n]]
        while stack:
            e = stack.pop()
            if isinstance(e, Ref):
                if e.name not in seen:
                    seen.append(e.name)
                    todo.append(e.name)
            else:
                stack.extend(children(e))
    order = {n: i for i, n in enumerate(rules)}
    return {n: rules[n] for n in sorted(seen, key=lambda n: (n != root, order[n]))}


def write_rules(rules: dict[str, Expr]) -> str:
    return "".join(f"{name} ::= {format_expr(e)}\n" for name, e in rules.items())


# --- reading GBNF back (to explain a grammar libllama refused) ---

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
