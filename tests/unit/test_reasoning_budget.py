"""The reasoning budget's state machine: counting inside the think block, forcing the close, then passthrough."""

from llamaserve.engine.reasoning_budget import COUNTING, DONE, FORCING, IDLE, ReasoningBudget
from llamaserve.engine.types import BudgetSpec

START, END = (1, 2), (3, 4)  # two-token markers
FORCED = (9, 3, 4)  # a one-token message, then the closing marker


def run(budget: ReasoningBudget, sampled: list[int]) -> list[int]:
    """What gets emitted when the model would produce `sampled` (forced tokens take the place of samples)."""
    out, it = [], iter(sampled)
    while len(out) < len(sampled):
        token = budget.forced()
        if token is None:
            token = next(it)
        out.append(token)
        budget.feed(token)
    return out


def test_counts_from_the_opening_marker_and_forces_the_close():
    b = ReasoningBudget(BudgetSpec(3, START, END, FORCED))
    assert b.state == IDLE
    out = run(b, [7, 1, 2, 5, 5, 5, 5, 5, 5, 6, 6])
    assert out == [7, 1, 2, 5, 5, 5, 9, 3, 4, 5, 5]
    assert b.state == DONE


def test_a_prompt_that_opened_the_block_counts_from_the_first_token():
    b = ReasoningBudget(BudgetSpec(2, START, END, FORCED, open_in_prompt=True))
    assert b.state == COUNTING
    assert run(b, [5, 5, 5, 5, 5, 5]) == [5, 5, 9, 3, 4, 5]


def test_a_natural_close_within_budget_ends_counting():
    b = ReasoningBudget(BudgetSpec(5, START, END, FORCED, open_in_prompt=True))
    assert run(b, [5, 3, 4, 5, 5, 5, 5, 5]) == [5, 3, 4, 5, 5, 5, 5, 5]
    assert b.state == DONE


def test_zero_budget_closes_at_once():
    b = ReasoningBudget(BudgetSpec(0, START, END, END, open_in_prompt=True))
    assert b.state == FORCING
    assert run(b, [5, 5, 5]) == [3, 4, 5]


def test_a_refused_forced_token_leaves_the_budget():
    b = ReasoningBudget(BudgetSpec(1, START, END, FORCED, open_in_prompt=True))
    b.feed(5)
    assert b.forced() == 9
    b.stop_forcing()
    assert b.forced() is None and b.state == DONE
