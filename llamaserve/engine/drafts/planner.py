"""How many of its proposed draft tokens each slot verifies this step, from what a step costs here.

A step of n batch positions takes about a + b·n seconds: a fixed part (reading the weights once,
launching the threads, the Python around it) and a part per position. Drafting pays by spreading the
fixed part over more tokens, so whether it pays depends on the machine and on how many slots already
share the step: verifying two positions instead of one costs a small model on two CPU cores only ~1.1×
one step (bench/verify_cost.py), but four slots already fill most of that fixed part, and with drafts
a 4-client run got slower. StepCost fits a and b to this server's own generation steps; plan() then
adds draft tokens, the likeliest first, while each one raises the step's expected tokens per second.

A slot's chance of having its next draft token accepted is estimated from its own history: of the draft
positions verification reached (all before them kept), how many were kept.
"""

from __future__ import annotations

import heapq
from collections import deque

WINDOW = 256  # recent generation steps the fit reads
MIN_STEPS = 16  # before that many, over MIN_SPREAD batch sizes or more, DEFAULT_FIXED is assumed
MIN_SPREAD = 3
DEFAULT_FIXED = 2.0  # a / b: the fixed part of a step in per-position units (measured here: 10.6 / 5.4 ms)
EXPLORE = 16  # a slot with fewer reached positions verifies its whole draft: its rate is not known yet


class StepCost:
    """a + b·n fitted by least squares to (n, seconds) of recent generation steps (no prompt chunks)."""

    def __init__(self) -> None:
        self.steps: deque[tuple[int, float]] = deque(maxlen=WINDOW)

    def record(self, n: int, seconds: float) -> None:
        self.steps.append((n, seconds))

    def fixed_ratio(self) -> float:
        """a / b, or the default until the steps seen vary enough in size to tell."""
        if len(self.steps) < MIN_STEPS:
            return DEFAULT_FIXED
        ns = [n for n, _ in self.steps]
        if max(ns) - min(ns) < MIN_SPREAD:
            return DEFAULT_FIXED  # steps of nearly one size tell the fixed part from the rest badly
        mean_n = sum(ns) / len(ns)
        var = sum((n - mean_n) ** 2 for n in ns)
        if var <= 0:
            return DEFAULT_FIXED
        mean_t = sum(t for _, t in self.steps) / len(self.steps)
        b = sum((n - mean_n) * (t - mean_t) for n, t in self.steps) / var
        if b <= 0:
            return DEFAULT_FIXED
        return max(0.0, (mean_t - b * mean_n) / b)


def acceptance(n_reached: int, n_accepted: int) -> float:
    """The chance the next draft position is kept, given all before it were (a prior of one in two)."""
    return (n_accepted + 1) / (n_reached + 2)


def plan(proposed: list[int], rates: list[float], reached: list[int], n_base: int, fixed: float) -> list[int]:
    """Draft tokens to verify per slot. proposed: tokens each slot's source drafted; rates: each slot's
    acceptance chance; n_base: the step's positions without drafts (one per generating slot), which
    also give one token each; fixed: StepCost.fixed_ratio(). A draft's j-th token adds rate^j expected
    tokens and one position; one is added while (E + g) / (fixed + N + 1) > E / (fixed + N)."""
    k = [0] * len(proposed)
    expected, n = float(n_base), float(n_base)
    for i, p in enumerate(proposed):
        if p > 0 and reached[i] < EXPLORE:
            # explore: without verified drafts its rate would never be known (and steps of several
            # sizes let StepCost tell the fixed part)
            k[i] = p
            expected += sum(rates[i] ** (j + 1) for j in range(p))
            n += p
    heap = [(-(rates[i] ** (k[i] + 1)), i) for i in range(len(proposed)) if k[i] < proposed[i]]
    heapq.heapify(heap)
    while heap:
        neg_gain, i = heapq.heappop(heap)
        gain = -neg_gain
        if gain * (fixed + n) <= expected:
            break  # the likeliest token left would lower tokens per second: so would every other
        k[i] += 1
        expected += gain
        n += 1
        if k[i] < proposed[i]:
            heapq.heappush(heap, (-(rates[i] ** (k[i] + 1)), i))
    return k
