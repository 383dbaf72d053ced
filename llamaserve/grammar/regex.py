"""JSON Schema `pattern` regexes (ECMA-262 syntax, the subset schemas use) as grammar expressions.

A pattern is read into the expression tree of expr.py over the characters of
the *decoded* string (plus `Anchor` marks), then `json_string_content`
re-expresses it over the characters the model writes inside a JSON string
literal (`"` as `\\"`, newline as `\\n`, ...). Anything outside the subset
raises PatternError with the reason; nothing is approximated.
"""

from __future__ import annotations

from dataclasses import dataclass

from llamaserve.grammar.expr import (
    EMPTY, MAX_CODEPOINT, NEVER, REPETITION_LIMIT, Alt, Chars, Expr, Lit, Ref, Rep, Seq, alt, children,
    complement_ranges, intersect_ranges, normalize_ranges, rep, seq,
)


class PatternError(ValueError):
    pass


@dataclass(frozen=True)
class Anchor:
    kind: str  # "^" or "$"


DIGITS = ((0x30, 0x39),)
WORD = normalize_ranges([(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)])
# ECMA-262 WhiteSpace + LineTerminator, less U+FEFF, which Python's re (used by common validators) does not count
SPACE = normalize_ranges([(0x09, 0x0D), (0x20, 0x20), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
                          (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000)])
LINE_TERMINATORS = normalize_ranges([(0x0A, 0x0A), (0x0D, 0x0D), (0x2028, 0x2029)])
DOT = complement_ranges(LINE_TERMINATORS)
_CLASS_ESCAPES = {"d": DIGITS, "w": WORD, "s": SPACE}
_CONTROL_ESCAPES = {"t": 0x09, "n": 0x0A, "v": 0x0B, "f": 0x0C, "r": 0x0D}
_SYNTAX = set("^$\\.*+?()[]{}|/")
_HEX = set("0123456789abcdefABCDEF")


class _Parser:
    def __init__(self, pattern: str):
        self.p = pattern
        self.i = 0

    def fail(self, msg: str):
        raise PatternError(f"{msg} at position {self.i}")

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.p[j] if j < len(self.p) else ""

    def parse(self) -> Expr:
        e = self.alternation()
        if self.i < len(self.p):
            self.fail("unbalanced ')'")
        return e

    def alternation(self) -> Expr:
        branches = [self.sequence()]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.sequence())
        return Alt(tuple(branches)) if len(branches) > 1 else branches[0]

    def sequence(self) -> Expr:
        items: list = []
        while self.i < len(self.p) and self.peek() not in "|)":
            atom = self.atom()
            atom = self.quantified(atom)
            items.append(atom)
        return Seq(tuple(items)) if len(items) != 1 else items[0]

    def quantified(self, atom):
        q = self.quantifier()
        if q is None:
            return atom
        if isinstance(atom, Anchor):
            self.fail(f"quantifier after the anchor '{atom.kind}'")
        lo, hi = q
        if self.peek() == "?":  # lazy: the same strings match
            self.i += 1
        if self.quantifier_ahead():
            self.fail("nothing to repeat")
        return Rep(atom, lo, hi)

    def quantifier_ahead(self) -> bool:
        c = self.peek()
        return c != "" and c in "*+?" or c == "{" and self._counts_at(self.i) is not None

    def quantifier(self):
        c = self.peek()
        if c == "*":
            self.i += 1
            return 0, None
        if c == "+":
            self.i += 1
            return 1, None
        if c == "?":
            self.i += 1
            return 0, 1
        if c == "{":
            found = self._counts_at(self.i)
            if found is None:
                return None  # Annex B: a '{' that starts no quantifier is a literal
            lo, hi, end = found
            if hi is not None and hi < lo:
                self.fail(f"numbers out of order in {{{lo},{hi}}} quantifier")
            self.i = end
            return lo, hi
        return None

    def _counts_at(self, j: int):
        k = j + 1
        start = k
        while k < len(self.p) and self.p[k].isdigit():
            k += 1
        if k == start:
            return None
        lo = int(self.p[start:k])
        hi: int | None = lo
        if k < len(self.p) and self.p[k] == ",":
            k += 1
            s2 = k
            while k < len(self.p) and self.p[k].isdigit():
                k += 1
            hi = int(self.p[s2:k]) if k > s2 else None
        if k < len(self.p) and self.p[k] == "}":
            return lo, hi, k + 1
        return None

    def atom(self):
        c = self.peek()
        if c in "*+?" or c == "{" and self._counts_at(self.i) is not None:
            self.fail("nothing to repeat")
        if c == "(":
            self.i += 1
            if self.peek() == "?":
                if self.peek(1) == ":":
                    self.i += 2
                elif self.peek(1) == "<" and self.peek(2) not in ("=", "!"):
                    end = self.p.find(">", self.i)
                    if end < 0:
                        self.fail("unterminated group name")
                    self.i = end + 1
                elif self.peek(1) in ("=", "!") or self.peek(1) == "<":
                    raise PatternError("lookahead and lookbehind assertions are not supported")
                else:
                    self.fail("invalid group")
            inner = self.alternation()
            if self.peek() != ")":
                self.fail("missing ')'")
            self.i += 1
            return inner
        if c == "[":
            return self.char_class()
        if c == ".":
            self.i += 1
            return Chars(DOT)
        if c in "^$":
            self.i += 1
            return Anchor(c)
        if c == "\\":
            return self.escape()
        self.i += 1
        return Lit(c)

    def escape(self):
        self.i += 1
        c = self.peek()
        if not c:
            self.fail("pattern ends with a lone '\\'")
        self.i += 1
        if c.lower() in _CLASS_ESCAPES:
            rs = _CLASS_ESCAPES[c.lower()]
            return Chars(complement_ranges(rs) if c.isupper() else rs)
        if c in "bB":
            raise PatternError("word boundary assertions (\\b, \\B) are not supported")
        if c.isdigit() and c != "0" or c == "k" and self.peek() == "<":
            raise PatternError("backreferences are not supported")
        if c in "pP" and self.peek() == "{":
            raise PatternError("Unicode property escapes (\\p{...}) are not supported")
        return Lit(chr(self.char_escape(c)))

    def char_escape(self, c: str) -> int:
        """The code point of an escape whose letter `c` has just been read."""
        if c in _CONTROL_ESCAPES:
            return _CONTROL_ESCAPES[c]
        if c == "0":
            if self.peek().isdigit():
                raise PatternError("octal escapes are not supported")
            return 0
        if c == "c":
            letter = self.peek()
            if letter.isascii() and letter.isalpha():
                self.i += 1
                return ord(letter) % 32
            self.fail("invalid control escape \\c")
        if c == "x":
            digits = self.p[self.i:self.i + 2]
            if len(digits) == 2 and set(digits) <= _HEX:
                self.i += 2
                return int(digits, 16)
            self.fail("\\x needs two hex digits")
        if c == "u":
            if self.peek() == "{":
                end = self.p.find("}", self.i)
                digits = self.p[self.i + 1:end] if end > 0 else ""
                if digits and set(digits) <= _HEX and int(digits, 16) <= MAX_CODEPOINT:
                    self.i = end + 1
                    return int(digits, 16)
                self.fail("invalid \\u{...} escape")
            digits = self.p[self.i:self.i + 4]
            if len(digits) == 4 and set(digits) <= _HEX:
                self.i += 4
                cp = int(digits, 16)
                if 0xD800 <= cp <= 0xDBFF and self.p[self.i:self.i + 2] == "\\u":
                    low = self.p[self.i + 2:self.i + 6]
                    if len(low) == 4 and set(low) <= _HEX and 0xDC00 <= int(low, 16) <= 0xDFFF:
                        self.i += 6
                        return 0x10000 + ((cp - 0xD800) << 10) + (int(low, 16) - 0xDC00)
                return cp
            self.fail("\\u needs four hex digits")
        if c in _SYNTAX or c == "-" or not (c.isascii() and c.isalnum()):
            return ord(c)
        raise PatternError(f"unknown escape '\\{c}'")

    def char_class(self) -> Expr:
        start = self.i
        self.i += 1
        negate = self.peek() == "^"
        if negate:
            self.i += 1
        ranges: list[tuple[int, int]] = []
        while True:
            c = self.peek()
            if not c:
                self.i = start
                self.fail("unterminated character class")
            if c == "]":  # ECMA: "[]" is an empty class, "[^]" any character
                break
            lo = self.class_atom()
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.i += 1
                hi = self.class_atom()
                if isinstance(lo, tuple) or isinstance(hi, tuple):
                    self.fail("a character class escape (\\d, \\w, \\s) cannot bound a range")
                if hi < lo:
                    self.fail(f"range out of order in character class ({chr(lo)!r}-{chr(hi)!r})")
                ranges.append((lo, hi))
            elif isinstance(lo, tuple):
                ranges.extend(lo)
            else:
                ranges.append((lo, lo))
        self.i += 1
        norm = normalize_ranges(ranges)
        if negate:
            norm = complement_ranges(norm)
        if not norm:
            raise PatternError("the character class matches no character")
        return Chars(norm)

    def class_atom(self):
        """A code point, or a tuple of ranges for \\d \\w \\s and their negations."""
        c = self.p[self.i]
        if c != "\\":
            self.i += 1
            return ord(c)
        self.i += 1
        e = self.peek()
        if not e:
            self.fail("pattern ends with a lone '\\'")
        self.i += 1
        if e.lower() in _CLASS_ESCAPES:
            rs = _CLASS_ESCAPES[e.lower()]
            return complement_ranges(rs) if e.isupper() else rs
        if e == "b":
            return 0x08
        if e.isdigit() and e != "0":
            raise PatternError("backreferences are not supported")
        if e in "pP" and self.peek() == "{":
            raise PatternError("Unicode property escapes (\\p{...}) are not supported")
        return self.char_escape(e)


def parse_pattern(pattern: str) -> Expr:
    """The pattern's expression tree over decoded characters (with Anchor marks); PatternError if invalid."""
    return _Parser(pattern).parse()


def length_range(e) -> tuple[int, int | None]:
    """Fewest and most characters a (decoded-space, anchor-free or anchored) expression matches."""
    if isinstance(e, Lit):
        return len(e.text), len(e.text)
    if isinstance(e, Chars):
        return 1, 1
    if isinstance(e, Anchor):
        return 0, 0
    if isinstance(e, Seq):
        lo, hi = 0, 0
        for x in e.items:
            a, b = length_range(x)
            lo += a
            hi = None if hi is None or b is None else hi + b
        return lo, hi
    if isinstance(e, Alt):
        ranges = [length_range(x) for x in e.items]
        return min(r[0] for r in ranges), None if any(r[1] is None for r in ranges) else max(r[1] for r in ranges)
    if isinstance(e, Rep):
        a, b = length_range(e.item)
        if e.max is None:
            return a * e.min, 0 if b == 0 else None
        return a * e.min, None if b is None else b * e.max
    raise TypeError(e)


@dataclass
class Anchored:
    """One top-level branch of a pattern: its body and whether it is anchored at each end."""
    body: Expr
    start: bool
    end: bool


def split_anchors(e) -> list[Anchored]:
    """Top-level branches with their ^/$ anchors taken off; PatternError for an anchor anywhere else."""
    out = []
    for branch in e.items if isinstance(e, Alt) else (e,):
        items = list(branch.items) if isinstance(branch, Seq) else [branch]
        start = end = False
        while items and items[0] == Anchor("^"):
            items.pop(0)
            start = True
        while items and items[-1] == Anchor("$"):
            items.pop()
            end = True
        body = Seq(tuple(items)) if len(items) != 1 else items[0]
        if _has_anchor(body):
            raise PatternError("anchors (^, $) are supported only at the start and end of the pattern "
                               "or of its top-level alternatives")
        out.append(Anchored(_simplify(body), start, end))
    return out


def _has_anchor(e) -> bool:
    return isinstance(e, Anchor) or any(_has_anchor(c) for c in children(e))


def _simplify(e: Expr) -> Expr:
    """Rebuild through the smart constructors, and make repeated groups that can match "" non-empty."""
    if isinstance(e, Seq):
        return seq(*[_simplify(x) for x in e.items])
    if isinstance(e, Alt):
        return alt(*[_simplify(x) for x in e.items])
    if isinstance(e, Rep):
        item = _simplify(e.item)
        if e.min > REPETITION_LIMIT:
            raise PatternError(f"a repetition of at least {e.min} is above the supported {REPETITION_LIMIT}")
        if e.max is not None and e.max > REPETITION_LIMIT:  # libllama would make it unbounded: narrow instead
            e = Rep(e.item, e.min, REPETITION_LIMIT)
        if length_range(item)[0] == 0:
            # (x){m,n} with x able to match "" is (x without "")){0,n}: same strings, and the grammar
            # engine never loops on an empty iteration
            return rep(_non_empty(item), 0, e.max)
        return rep(item, e.min, e.max)
    return e


def _non_empty(e: Expr) -> Expr:
    """The strings of `e` other than the empty one."""
    if isinstance(e, (Lit, Chars)):
        return e if not (isinstance(e, Lit) and e.text == "") else NEVER
    if isinstance(e, Alt):
        return alt(*[_non_empty(x) for x in e.items])
    if isinstance(e, Seq):
        if not e.items:
            return NEVER
        head, tail = e.items[0], seq(*e.items[1:])
        if length_range(head)[0] > 0:
            return e
        return alt(seq(_non_empty(head), tail), _non_empty(tail))
    if isinstance(e, Rep):  # item is non-empty already (simplified bottom-up)
        return seq(e.item, rep(e.item, max(e.min - 1, 0), None if e.max is None else e.max - 1))
    return e


# --- decoded characters -> characters written inside a JSON string literal ---

# Characters a JSON string may hold as they are (no '"', '\\', controls; DEL and surrogates left out too).
JSON_RAW = normalize_ranges([(0x20, 0x21), (0x23, 0x5B), (0x5D, 0x7E), (0x80, 0xD7FF), (0xE000, MAX_CODEPOINT)])
_SHORT_ESCAPES = {0x22: '\\"', 0x5C: "\\\\", 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x7F: "\\u007f"}


def encode_chars(ranges: tuple[tuple[int, int], ...]) -> Expr:
    """One decoded character from `ranges`, as written in JSON. Control characters without a short escape
    are never generated (a narrowing, never a widening)."""
    options: list[Expr] = []
    raw = intersect_ranges(ranges, JSON_RAW)
    if raw:
        options.append(Chars(raw))
    for cp, text in _SHORT_ESCAPES.items():
        if intersect_ranges(ranges, ((cp, cp),)):
            options.append(Lit(text))
    return alt(*options) if options else NEVER


def encode_text(text: str) -> Expr:
    parts: list[Expr] = []
    for ch in text:
        cp = ord(ch)
        if intersect_ranges(((cp, cp),), JSON_RAW):
            parts.append(Lit(ch))
        elif cp in _SHORT_ESCAPES:
            parts.append(Lit(_SHORT_ESCAPES[cp]))
        else:
            parts.append(Lit(f"\\u{cp:04x}"))
    return seq(*parts)


def to_json_space(e: Expr) -> Expr:
    """Re-express a decoded-space expression over the characters of a JSON string literal's body."""
    if isinstance(e, Lit):
        return encode_text(e.text)
    if isinstance(e, Chars):
        return encode_chars(e.ranges)
    if isinstance(e, Seq):
        return seq(*[to_json_space(x) for x in e.items])
    if isinstance(e, Alt):
        return alt(*[to_json_space(x) for x in e.items])
    if isinstance(e, Rep):
        return rep(to_json_space(e.item), e.min, e.max)
    if isinstance(e, Ref):
        return e
    raise TypeError(e)


def fit_length(body: Expr, min_len: int, max_len: int | None) -> Expr | None:
    """`body` restricted to strings of min_len..max_len characters, where that can be said exactly by
    tightening a single variable-width repetition; NEVER if no string fits; None if it cannot be said."""
    lo, hi = length_range(body)
    if max_len is not None and lo > max_len or hi is not None and hi < min_len:
        return NEVER
    if lo >= min_len and (max_len is None or hi is not None and hi <= max_len):
        return body
    items = list(body.items) if isinstance(body, Seq) else [body]
    variable = [i for i, x in enumerate(items) if length_range(x)[0] != length_range(x)[1]]
    if len(variable) != 1:
        return None
    k = variable[0]
    r = items[k]
    if not isinstance(r, Rep) or length_range(r.item) != (1, 1):
        return None
    fixed = lo - r.min
    new_lo = max(r.min, min_len - fixed)
    new_hi = r.max
    if max_len is not None:
        new_hi = max_len - fixed if new_hi is None else min(new_hi, max_len - fixed)
    if new_hi is not None and new_hi < new_lo:
        return NEVER
    items[k] = rep(r.item, new_lo, new_hi)
    return seq(*items)


def pattern_body(pattern: str, any_char: Ref, min_len: int = 0, max_len: int | None = None) -> Expr:
    """The inside of a JSON string literal whose value matches `pattern` (search semantics, as JSON Schema
    says: an unanchored end admits any characters there) and has min_len..max_len characters.
    NEVER if no string does; PatternError if the pattern is invalid or cannot be honoured exactly."""
    options = []
    for b in split_anchors(parse_pattern(pattern)):
        body = b.body
        lo, hi = length_range(body)
        if not (b.start and b.end):
            hi = None
        if lo < min_len or max_len is not None and (hi is None or hi > max_len):
            if max_len is not None and lo > max_len:
                continue
            if not (b.start and b.end):
                raise PatternError("minLength/maxLength together with a pattern that is not anchored at both "
                                   "ends (^...$) is not supported")
            fitted = fit_length(body, min_len, max_len)
            if fitted is None:
                raise PatternError("minLength/maxLength cannot be combined exactly with this pattern; "
                                   "put the length into the pattern instead (e.g. ^[a-z]{1,20}$)")
            body = fitted
        encoded = to_json_space(body)
        if encoded == NEVER:
            continue
        options.append(seq(
            EMPTY if b.start else rep(any_char, 0, None),
            encoded,
            EMPTY if b.end else rep(any_char, 0, None),
        ))
    return alt(*options) if options else NEVER
