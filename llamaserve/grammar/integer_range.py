"""Exact grammars for the decimal integers between two bounds (JSON's form: no leading zeros, no "-0").

An open bound is closed at MAX_DIGITS digits, or at the other bound's digit count if that is more (a narrowing: every number produced still satisfies the
schema), which also keeps models from writing endless digit strings.
"""

from __future__ import annotations

from llamaserve.grammar.expr import NEVER, Expr, Lit, alt, chars, rep, seq

MAX_DIGITS = 16
DIGIT = chars((0x30, 0x39))


def _digit_range(a: str, b: str) -> Expr:
    return Lit(a) if a == b else chars((ord(a), ord(b)))


def _same_length(x: str, y: str) -> Expr:
    """Digit strings of len(x) == len(y) between x and y inclusive (leading zeros allowed)."""
    n = len(x)
    if x == "0" * n and y == "9" * n:
        return rep(DIGIT, n, n)
    if n == 1:
        return _digit_range(x, y)
    if x[0] == y[0]:
        return seq(Lit(x[0]), _same_length(x[1:], y[1:]))
    rest = n - 1
    low_full = x[1:] == "0" * rest
    high_full = y[1:] == "9" * rest
    parts = []
    if not low_full:
        parts.append(seq(Lit(x[0]), _same_length(x[1:], "9" * rest)))
    first = x[0] if low_full else chr(ord(x[0]) + 1)
    last = y[0] if high_full else chr(ord(y[0]) - 1)
    if first <= last:
        parts.append(seq(_digit_range(first, last), rep(DIGIT, rest, rest)))
    if not high_full:
        parts.append(seq(Lit(y[0]), _same_length("0" * rest, y[1:])))
    return alt(*parts)


def _non_negative(lo: int, hi: int) -> Expr:
    """Canonical decimals of lo..hi (0 <= lo <= hi)."""
    parts = []
    n_lo, n_hi = len(str(lo)), len(str(hi))
    full_from = None  # digit counts whose whole range is included are folded into one [1-9][0-9]{a,b}
    for n in range(n_lo, n_hi + 1):
        start = max(lo, 0 if n == 1 else 10 ** (n - 1))
        end = min(hi, 10 ** n - 1)
        if n > 1 and start == 10 ** (n - 1) and end == 10 ** n - 1:
            full_from = n if full_from is None else full_from
            continue
        if full_from is not None:
            parts.append(_full(full_from, n - 1))
            full_from = None
        parts.append(_same_length(str(start), str(end)))
    if full_from is not None:
        parts.append(_full(full_from, n_hi))
    return alt(*parts)


def _full(n1: int, n2: int) -> Expr:
    return seq(_digit_range("1", "9"), rep(DIGIT, n1 - 1, n2 - 1))


def integer_range(lo: int | None, hi: int | None) -> Expr:
    """JSON integers n with lo <= n <= hi (None: unbounded on that side, up to MAX_DIGITS digits)."""
    top = 10 ** MAX_DIGITS - 1
    if lo is not None and hi is not None and lo > hi:
        return NEVER
    parts = []
    if lo is None or lo < 0:
        # negatives: "-" then |n| in max(1, -hi)..-lo
        neg_lo = 1 if hi is None or hi >= 0 else -hi
        neg_hi = max(top, 10 ** len(str(neg_lo)) - 1) if lo is None else -lo
        if neg_lo <= neg_hi:
            parts.append(seq(Lit("-"), _non_negative(neg_lo, neg_hi)))
    if hi is None or hi >= 0:
        pos_lo = 0 if lo is None or lo < 0 else lo
        pos_hi = max(top, 10 ** len(str(pos_lo)) - 1) if hi is None else hi
        parts.append(_non_negative(pos_lo, pos_hi))
    return alt(*parts[::-1])
