"""GBNF expressions as values: a small tree (literals, character sets, rule references, sequences,
alternatives, repetitions) and the constructors that keep it simplified as it is built.

The converters (json_schema.py, regex.py, integer_range.py) build these; gbnf.py writes them as GBNF text,
gbnf_reader.py reads GBNF text back into them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Union

MAX_CODEPOINT = 0x10FFFF
# libllama expands x{m,n} into n rules and refuses (or, for the max, silently drops) counts above this
REPETITION_LIMIT = 2000


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
