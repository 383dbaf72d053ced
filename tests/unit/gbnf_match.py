"""A small GBNF interpreter for tests: does a grammar accept a text? (Set-of-end-positions, memoized.)

Covers what the tool grammars use: literals, character classes (negated, ranges,
escapes), `.`, rule references, groups, alternatives, and * + ? {m} {m,} {m,n}.
"""

from __future__ import annotations

import re

_ESC = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "[": "[", "]": "]", "-": "-", "^": "^", "/": "/"}


class Grammar:
    def __init__(self, text: str):
        self.rules: dict[str, tuple] = {}
        self.src = text
        self.i = 0
        self._parse()

    # --- parsing ---
    def _ws(self, newlines: bool = True):
        while self.i < len(self.src):
            c = self.src[self.i]
            if c == "#":
                while self.i < len(self.src) and self.src[self.i] != "\n":
                    self.i += 1
            elif c in " \t\r" or (newlines and c == "\n"):
                self.i += 1
            else:
                break

    def _name(self):
        m = re.compile(r"[A-Za-z0-9_-]+").match(self.src, self.i)
        assert m, f"name expected at {self.src[self.i:self.i+30]!r}"
        self.i = m.end()
        return m.group()

    def _parse(self):
        self._ws()
        while self.i < len(self.src):
            name = self._name()
            self._ws()
            assert self.src.startswith("::=", self.i), f"::= expected after {name}"
            self.i += 3
            assert name not in self.rules, f"rule {name} defined twice"
            self.rules[name] = self._alts(top=True)
            self._ws()

    def _char(self):
        c = self.src[self.i]
        if c == "\\":
            e = self.src[self.i + 1]
            if e == "x":
                v = chr(int(self.src[self.i + 2:self.i + 4], 16)); self.i += 4
            elif e == "u":
                v = chr(int(self.src[self.i + 2:self.i + 6], 16)); self.i += 6
            elif e == "U":
                v = chr(int(self.src[self.i + 2:self.i + 10], 16)); self.i += 10
            else:
                v = _ESC[e]; self.i += 2
            return v
        self.i += 1
        return c

    def _alts(self, top=False):
        alts = [self._seq(top)]
        while self.i < len(self.src) and self.src[self.i] == "|":
            self.i += 1
            alts.append(self._seq(top))
        return ("alt", tuple(alts))

    def _seq(self, top):
        items = []
        while True:
            self._ws(newlines=not top)
            if top and self.i < len(self.src) and self.src[self.i] == "\n":
                # a newline ends the rule unless the next line continues it (starts with space or |)
                j = self.i
                while j < len(self.src) and self.src[j] in " \t\r\n":
                    j += 1
                if j < len(self.src) and self.src[j] == "|" and "\n" in self.src[self.i:j]:
                    self.i = j
                    return ("seq", tuple(items))
                break
            if self.i >= len(self.src):
                break
            c = self.src[self.i]
            if c in "|)":
                break
            if c == '"':
                self.i += 1
                s = []
                while self.src[self.i] != '"':
                    s.append(self._char())
                self.i += 1
                item = ("lit", "".join(s))
            elif c == "[":
                self.i += 1
                neg = self.src[self.i] == "^"
                if neg:
                    self.i += 1
                ranges = []
                while self.src[self.i] != "]":
                    a = self._char()
                    if self.src[self.i] == "-" and self.src[self.i + 1] != "]":
                        self.i += 1
                        b = self._char()
                    else:
                        b = a
                    ranges.append((a, b))
                self.i += 1
                item = ("cls", neg, tuple(ranges))
            elif c == "(":
                self.i += 1
                item = self._alts()
                self._ws()
                assert self.src[self.i] == ")"
                self.i += 1
            elif c == ".":
                self.i += 1
                item = ("any",)
            else:
                # a rule name, unless it starts the next rule definition
                save = self.i
                name = self._name()
                k = self.i
                while k < len(self.src) and self.src[k] in " \t":
                    k += 1
                if self.src.startswith("::=", k):
                    self.i = save
                    break
                item = ("ref", name)
            # repetition
            if self.i < len(self.src) and self.src[self.i] in "*+?":
                op = self.src[self.i]
                self.i += 1
                item = ("rep", item, {"*": 0, "+": 1, "?": 0}[op], {"*": None, "+": None, "?": 1}[op])
            elif self.i < len(self.src) and self.src[self.i] == "{":
                j = self.src.index("}", self.i)
                spec = self.src[self.i + 1:j]
                self.i = j + 1
                if "," in spec:
                    lo, hi = spec.split(",")
                    item = ("rep", item, int(lo or 0), int(hi) if hi.strip() else None)
                else:
                    item = ("rep", item, int(spec), int(spec))
            items.append(item)
        return ("seq", tuple(items))

    # --- matching ---
    def accepts(self, text: str, root: str = "root") -> bool:
        for name in self.rules:
            self._check_refs(self.rules[name])
        memo: dict = {}
        active: set = set()

        def ends(node, pos):
            kind = node[0]
            if kind == "lit":
                return {pos + len(node[1])} if text.startswith(node[1], pos) else set()
            if kind == "cls":
                if pos >= len(text):
                    return set()
                c = text[pos]
                inside = any(a <= c <= b for a, b in node[2])
                return {pos + 1} if inside != node[1] else set()
            if kind == "any":
                return {pos + 1} if pos < len(text) else set()
            if kind == "ref":
                key = (node[1], pos)
                if key in memo:
                    return memo[key]
                if key in active:
                    return set()
                active.add(key)
                r = ends(self.rules[node[1]], pos)
                active.discard(key)
                memo[key] = r
                return r
            if kind == "alt":
                out = set()
                for a in node[1]:
                    out |= ends(a, pos)
                return out
            if kind == "seq":
                cur = {pos}
                for item in node[1]:
                    nxt = set()
                    for p in cur:
                        nxt |= ends(item, p)
                    cur = nxt
                    if not cur:
                        break
                return cur
            if kind == "rep":
                _, item, lo, hi = node
                out = {pos} if lo == 0 else set()
                cur, n, seen = {pos}, 0, {pos}
                while cur and (hi is None or n < hi):
                    n += 1
                    nxt = set()
                    for p in cur:
                        nxt |= ends(item, p)
                    if hi is None:
                        nxt -= seen
                        seen |= nxt
                    cur = nxt
                    if n >= lo:
                        out |= cur
                return out
            raise AssertionError(kind)

        import sys

        old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old, 20000))
        try:
            return len(text) in ends(("ref", root), 0)
        finally:
            sys.setrecursionlimit(old)

    def _check_refs(self, node):
        if node[0] == "ref":
            assert node[1] in self.rules, f"undefined rule {node[1]}"
        elif node[0] in ("alt", "seq"):
            for n in node[1]:
                self._check_refs(n)
        elif node[0] == "rep":
            self._check_refs(node[1])
