"""The reasoning budget: a cap on the tokens a model spends inside its think block.

Fed every generated token, it counts those between the family's opening and closing markers;
when the budget is spent it hands out the forced tokens (an optional message, then the closing
marker) one by one, and after those it stays out of the way. Pure: token ids in, token ids out.
"""

from __future__ import annotations

from llamaserve.engine.types import BudgetSpec

IDLE, COUNTING, FORCING, DONE = "idle", "counting", "forcing", "done"


class ReasoningBudget:
    def __init__(self, spec: BudgetSpec):
        self.spec = spec
        self.recent: list[int] = []  # the last tokens, enough to match the markers
        self.keep = max(len(spec.start), len(spec.end), 1)
        self.left = spec.tokens
        self.i_forced = 0
        self.state = IDLE
        if spec.open_in_prompt:
            self._start_counting()

    def _start_counting(self) -> None:
        self.left = self.spec.tokens
        self.state = COUNTING if self.left > 0 else FORCING
        self.i_forced = 0

    def forced(self) -> int | None:
        """The token to emit next instead of sampling, or None to sample as usual."""
        if self.state != FORCING:
            return None
        return self.spec.forced[self.i_forced]

    def stop_forcing(self) -> None:
        """The forced token could not be emitted (a grammar refused it): leave the budget."""
        self.state = DONE

    def feed(self, token: int) -> None:
        """Account for one emitted token (sampled or forced)."""
        self.recent.append(token)
        del self.recent[: -self.keep]
        if self.state == IDLE:
            if self._ends_with(self.spec.start):
                self._start_counting()
        elif self.state == COUNTING:
            if self._ends_with(self.spec.end):
                self.state = DONE
            else:
                self.left -= 1
                if self.left <= 0:
                    self.state = FORCING
        elif self.state == FORCING:
            self.i_forced += 1
            if self.i_forced >= len(self.spec.forced):
                self.state = DONE

    def _ends_with(self, seq: tuple[int, ...]) -> bool:
        return bool(seq) and tuple(self.recent[-len(seq):]) == seq
