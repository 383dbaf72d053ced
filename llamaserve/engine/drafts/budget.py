"""How many tokens a slot may draft next: adaptivity, so that drafts that keep failing cost little.

On a compute-bound CPU, verifying k draft tokens costs about k extra token evaluations, and every one
rejected is wasted. The budget grows while drafts are accepted whole, shrinks to what was accepted
(plus one) after a partial acceptance, and after drafts accepted not at all it pauses drafting for a
number of steps that doubles with each further miss (up to MAX_PAUSE): down to almost none on text
the drafts cannot predict, back up at the first draft that lands.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_PAUSE = 64  # generation steps


@dataclass
class DraftBudget:
    n_max: int  # the most the draft source may propose
    n_min: int = 0  # the least worth verifying (the budget never asks for fewer, it pauses instead)
    limit: int = 0  # the most tokens of the next draft; 0 = n_max at the start
    misses: int = 0  # drafts in a row of which nothing was accepted
    pause: int = 0  # steps left without drafting

    def __post_init__(self) -> None:
        if self.limit <= 0:
            self.limit = self.n_max

    def allowed(self) -> int:
        """Tokens this step may draft (0 = none), counting a paused step."""
        if self.pause > 0:
            self.pause -= 1
            return 0
        return self.limit

    def verified(self, n_drafted: int, n_accepted: int) -> None:
        if n_drafted <= 0:
            return
        floor = max(1, self.n_min)
        if n_accepted >= n_drafted:
            self.misses = 0
            self.limit = min(self.n_max, max(self.limit, 2 * n_drafted))
        elif n_accepted > 0:
            self.misses = 0
            self.limit = min(self.n_max, max(floor, n_accepted + 1))
        else:
            self.misses += 1
            self.limit = min(self.n_max, floor)
            self.pause = min(MAX_PAUSE, (1 << self.misses) - 1)
