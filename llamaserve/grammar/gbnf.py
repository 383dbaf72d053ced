"""GBNF text from grammar expressions: `Grammar` names rules, removes branches that can never finish,
and writes GBNF that libllama's grammar parser accepts.

The expression tree is in expr.py, its analysis in analysis.py, the reader of GBNF text in gbnf_reader.py;
their names are re-exported here, so `llamaserve.grammar.gbnf` still offers the whole grammar toolkit.
"""

from __future__ import annotations

import re
from typing import Iterable

from llamaserve.grammar.analysis import (
    empty_loop, expr_nullable, left_edge_refs, left_recursive_rule, nullable_rules, productive_rules,
)
from llamaserve.grammar.expr import (
    EMPTY, MAX_CODEPOINT, NEVER, REPETITION_LIMIT, Alt, Chars, Expr, Lit, Ref, Rep, Seq, Token, alt, chars, children,
    complement_ranges, intersect_ranges, map_refs, normalize_ranges, opt, rep, seq,
)
from llamaserve.grammar.gbnf_reader import GbnfError, grammar_problem, parse_gbnf

__all__ = [
    # the expression tree (expr.py)
    "MAX_CODEPOINT", "REPETITION_LIMIT", "Lit", "Chars", "Ref", "Seq", "Alt", "Rep", "Token", "Expr", "EMPTY", "NEVER",
    "normalize_ranges", "complement_ranges", "intersect_ranges", "chars", "seq", "alt", "rep", "opt", "children",
    "map_refs",
    # its analysis (analysis.py)
    "nullable_rules", "expr_nullable", "productive_rules", "left_edge_refs", "left_recursive_rule", "empty_loop",
    # the text form (here)
    "rule_name", "format_literal", "format_chars", "format_expr", "Grammar", "write_rules",
    # reading it back (gbnf_reader.py)
    "GbnfError", "parse_gbnf", "grammar_problem",
]


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
