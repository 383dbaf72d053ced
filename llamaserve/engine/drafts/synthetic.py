"""Synthetic acceptance (--spec-synth-len / --spec-synth-rates), for benchmarking the drafting
machinery: each draft position is accepted with a set probability whatever the model says, so the
output is not the model's. Pure: the rates and the conditional probabilities drawn against."""

from __future__ import annotations

import math


class SynthError(ValueError):
    pass


def synth_rates(length: float, rates: list[float], n_max: int) -> list[float]:
    """The unconditional acceptance rate of each draft position ([] = synthetic acceptance off).

    Given rates must be one per position, in [0, 1], non-increasing. A mean length L (the target's
    own token included, so 1 <= L <= n_max + 1) becomes geometric rates p, p^2, ... whose sum is L - 1."""
    has_length, has_rates = length != -1.0, bool(rates)
    if not has_length and not has_rates:
        return []
    if has_length and has_rates:
        raise SynthError("--spec-synth-len and --spec-synth-rates exclude each other")
    if n_max <= 0:
        raise SynthError("synthetic acceptance needs drafts of at least one token")
    if has_rates:
        if len(rates) != n_max:
            raise SynthError(f"--spec-synth-rates needs {n_max} values (one per draft position), got {len(rates)}")
        if any(not math.isfinite(r) or not 0.0 <= r <= 1.0 for r in rates):
            raise SynthError("--spec-synth-rates values must be within [0, 1]")
        if any(b > a for a, b in zip(rates, rates[1:])):
            raise SynthError("--spec-synth-rates must not increase from one position to the next")
        return list(rates)
    top = n_max + 1.0
    if not math.isfinite(length) or not 1.0 <= length <= top:
        raise SynthError(f"--spec-synth-len must be within [1, {top:.0f}]")
    if length == top:
        p = 1.0
    elif length == 1.0:
        p = 0.0
    else:  # bisect for p with p + p^2 + ... + p^n_max = length - 1 (increasing in p)
        lo, hi = 0.0, 1.0
        for _ in range(50):
            mid = (lo + hi) / 2
            if sum(mid ** (i + 1) for i in range(n_max)) < length - 1.0:
                lo = mid
            else:
                hi = mid
        p = (lo + hi) / 2
    return [p ** (i + 1) for i in range(n_max)]


def conditional(rates: list[float]) -> list[float]:
    """P(position i accepted | position i - 1 accepted), what each position is drawn against."""
    out, previous = [], 1.0
    for r in rates:
        out.append(r / previous if previous > 0 else 0.0)
        previous = r
    return out
