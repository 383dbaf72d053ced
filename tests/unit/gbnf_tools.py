"""Test helpers: decide whether a GBNF grammar matches a string, and draw random strings from one.

They read the grammar *text* (through llamaserve.grammar.gbnf.parse_gbnf), so they test what libllama
is given, not the converter's internal trees. The one GBNF matcher of the tests (JSON Schema and tool-call
grammars alike).
"""

from __future__ import annotations

import random
import re
import sys

from llamaserve.grammar.gbnf import Alt, Chars, Expr, Lit, Ref, Rep, Seq, parse_gbnf


def _refs(e: Expr):
    if isinstance(e, Ref):
        yield e.name
    elif isinstance(e, (Seq, Alt)):
        for x in e.items:
            yield from _refs(x)
    elif isinstance(e, Rep):
        yield from _refs(e.item)


class Matcher:
    """Does the grammar accept a whole text: `Matcher(gbnf)(text)`. It also asserts that every rule a
    grammar names is defined, and that none is defined twice (libllama would join the two)."""

    def __init__(self, grammar: str, root: str = "root"):
        self.rules = parse_gbnf(grammar)
        self.root = root
        defined = re.findall(r"^[ \t]*([A-Za-z0-9_-]+)[ \t]*::=", grammar, re.M)
        twice = sorted({n for n in defined if defined.count(n) > 1})
        assert not twice, f"rules defined twice: {twice}"
        undefined = sorted({n for e in self.rules.values() for n in _refs(e)} - set(self.rules))
        assert not undefined, f"undefined rules: {undefined}"

    def __call__(self, text: str) -> bool:
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old, 20000))
        try:
            return self._accepts(text)
        finally:
            sys.setrecursionlimit(old)

    def _accepts(self, text: str) -> bool:
        memo: dict[tuple[int, int], frozenset[int]] = {}
        s = text

        def ends(e: Expr, i: int) -> frozenset[int]:
            key = (id(e), i)
            if key in memo:
                return memo[key]
            memo[key] = frozenset()
            if isinstance(e, Lit):
                r = {i + len(e.text)} if s.startswith(e.text, i) else set()
            elif isinstance(e, Chars):
                r = {i + 1} if i < len(s) and any(lo <= ord(s[i]) <= hi for lo, hi in e.ranges) else set()
            elif isinstance(e, Ref):
                r = set(ends(self.rules[e.name], i))
            elif isinstance(e, Seq):
                r = {i}
                for x in e.items:
                    r = {k for j in r for k in ends(x, j)}
            elif isinstance(e, Alt):
                r = {k for x in e.items for k in ends(x, i)}
            elif isinstance(e, Rep):
                r = {i} if e.min == 0 else set()
                frontier = {i}
                count = 0
                while frontier and (e.max is None or count < e.max):
                    frontier = {k for j in frontier for k in ends(e.item, j)}
                    count += 1
                    if count >= e.min:
                        if e.max is None and frontier <= r:
                            break
                        r |= frontier
            else:
                raise TypeError(e)
            out = frozenset(r)
            memo[key] = out
            return out

        return len(s) in ends(self.rules[self.root], 0)


class Sampler:
    """Random strings of a grammar; past `depth` it takes the shortest way out, so recursion ends."""

    def __init__(self, grammar: str, seed: int = 0, depth: int = 6, root: str = "root"):
        self.rules = parse_gbnf(grammar)
        self.rng = random.Random(seed)
        self.depth = depth
        self.root = root
        self.height = self._heights()

    def _heights(self) -> dict[str, float]:
        h = {n: float("inf") for n in self.rules}
        changed = True
        while changed:
            changed = False
            for n, e in self.rules.items():
                v = self._h(e, h) + 1
                if v < h[n]:
                    h[n] = v
                    changed = True
        return h

    def _h(self, e: Expr, h) -> float:
        if isinstance(e, Ref):
            return h[e.name]
        if isinstance(e, Seq):
            return max((self._h(x, h) for x in e.items), default=0)
        if isinstance(e, Alt):
            return min(self._h(x, h) for x in e.items)
        if isinstance(e, Rep):
            return 0 if e.min == 0 else self._h(e.item, h)
        return 0

    def __call__(self) -> str:
        out: list[str] = []
        self._gen(Ref(self.root), 0, out)
        return "".join(out)

    def _gen(self, e: Expr, d: int, out: list[str]) -> None:
        rng = self.rng
        if isinstance(e, Lit):
            out.append(e.text)
        elif isinstance(e, Chars):
            # mostly ASCII where the set allows it, sometimes anything in the set
            ranges = e.ranges
            ascii_ranges = [(lo, min(hi, 0x7E)) for lo, hi in ranges if lo <= 0x7E]
            pick = ascii_ranges if ascii_ranges and rng.random() < 0.9 else ranges
            lo, hi = rng.choice(pick)
            out.append(chr(rng.randint(lo, hi)))
        elif isinstance(e, Ref):
            self._gen(self.rules[e.name], d + 1, out)
        elif isinstance(e, Seq):
            for x in e.items:
                self._gen(x, d, out)
        elif isinstance(e, Alt):
            if d > self.depth:
                x = min(e.items, key=lambda x: self._h(x, self.height))
            else:
                x = rng.choice(e.items)
            self._gen(x, d, out)
        elif isinstance(e, Rep):
            hi = e.max if e.max is not None else e.min + 4
            n = e.min if d > self.depth else rng.randint(e.min, min(hi, e.min + 6))
            for _ in range(n):
                self._gen(e.item, d + 1, out)
        else:
            raise TypeError(e)
