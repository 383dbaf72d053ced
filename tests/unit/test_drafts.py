"""The pure parts of speculative decoding: n-gram lookups, the draft budget (adaptivity), synthetic
acceptance rates, and which types a configuration runs."""

from __future__ import annotations

import numpy as np
import pytest

from llamaserve.config import SpeculativeConfig
from llamaserve.engine.drafts.budget import MAX_PAUSE, DraftBudget
from llamaserve.engine.drafts.ngram import NgramMod, ngram_simple
from llamaserve.engine.drafts.synthetic import SynthError, conditional, synth_rates
from llamaserve.engine.types import SpecParams, Timings


def arr(*tokens):
    return np.asarray(tokens, dtype=np.int32)


# --- ngram-simple ---

def test_ngram_simple_drafts_what_followed_the_latest_earlier_occurrence():
    #          0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15 16
    history = arr(9, 1, 2, 3, 4, 5, 6, 1, 2, 7, 8, 9, 9, 9, 9, 1, 2)
    # the last 2 tokens (1, 2) occurred at 1 and at 7: the latest wins, and what followed it is drafted
    assert ngram_simple(history, 2, 4) == [7, 8, 9, 9]
    assert ngram_simple(history, 2, 3) == [7, 8, 9]


def test_ngram_simple_draft_is_bounded_by_the_history_and_at_least_n_long():
    history = arr(5, 1, 2, 3, 4, 6, 6, 6, 6, 6, 1, 2)
    assert ngram_simple(history, 2, 30) == []  # too short a history for n + m
    assert ngram_simple(history, 2, 5) == [3, 4, 6, 6, 6]
    # a match whose continuation is shorter than n drafts nothing (llama-server's rule)
    history = arr(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 8, 9, 7, 8, 9)
    assert ngram_simple(history, 3, 3) == []
    history = arr(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 8, 9, 4, 7, 8, 9)
    assert ngram_simple(history, 3, 3) == [4, 7, 8]  # (the continuation may run into the n-gram itself)


def test_ngram_simple_without_a_match_or_at_position_zero_drafts_nothing():
    history = arr(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 1, 2)
    assert ngram_simple(history, 2, 3) == []  # (1, 2) only at 0: position 0 counts as no match
    assert ngram_simple(arr(*range(40)), 3, 5) == []
    assert ngram_simple(arr(1, 2, 1, 2), 0, 3) == []


# --- ngram-mod ---

def test_ngram_mod_chains_lookups_and_drops_short_drafts():
    mod = NgramMod(n_match=2, n_min=3, n_max=5)
    prompt = arr(1, 2, 3, 4, 5, 6, 9, 9)
    mod.add(0, prompt)
    # the slot (another sequence: the table is shared) ends in (1, 2): 3, 4, 5, 6, 9 follow
    assert mod.draft(1, arr(7, 7, 1, 2)) == [3, 4, 5, 6, 9]
    assert mod.draft(1, arr(7, 7, 4, 5)) == [6, 9, 9]
    assert mod.draft(1, arr(7, 7, 5, 6)) == []  # 9, 9, then (9, 9) is unknown: 2 tokens, below n_min
    assert mod.draft(1, arr(7, 7, 8, 8)) == []


def test_ngram_mod_learns_from_the_history_as_it_grows_and_resets():
    mod = NgramMod(n_match=2, n_min=1, n_max=3)
    history = arr(*([5, 6] * 30))  # more than 32 new tokens: entered at the draft
    assert mod.draft(0, history) == [5, 6, 5]
    mod.reset()
    assert mod.table == {} and mod.draft(1, arr(5, 6)) == []
    small = NgramMod(n_match=1, n_min=1, n_max=2, max_entries=4)
    small.add(0, arr(9, 8, 9))
    assert small.draft(2, arr(9)) == [8, 9]
    small.add(1, arr(1, 2, 3, 4, 5))  # would outgrow its bound: emptied first
    assert small.draft(2, arr(9)) == [] and small.draft(2, arr(1)) == [2, 3]


# --- adaptivity ---

def test_a_budget_grows_with_accepted_drafts_and_shrinks_to_what_was_accepted():
    b = DraftBudget(n_max=16)
    assert b.allowed() == 16
    b.verified(16, 5)
    assert b.allowed() == 6
    b.verified(6, 6)
    assert b.allowed() == 12
    b.verified(12, 12)
    assert b.allowed() == 16
    assert DraftBudget(n_max=16, n_min=4, limit=8).allowed() == 8


def test_drafts_that_keep_failing_pause_drafting_longer_and_longer_and_one_hit_resumes():
    b = DraftBudget(n_max=8)
    pauses = []
    for _ in range(8):
        b.verified(b.allowed() or 1, 0)
        n = 0
        while b.allowed() == 0:
            n += 1
        pauses.append(n)
    assert pauses == [1, 3, 7, 15, 31, 63, MAX_PAUSE, MAX_PAUSE]
    assert b.limit == 1  # and each draft after a pause is one token
    b.verified(1, 1)
    assert (b.misses, b.allowed()) == (0, 2)
    b.verified(0, 0)  # nothing drafted: nothing learnt
    assert (b.misses, b.pause) == (0, 0)


# --- synthetic acceptance ---

def test_synthetic_rates_from_a_mean_length_sum_to_it():
    rates = synth_rates(3.0, [], 4)
    assert len(rates) == 4 and abs(sum(rates) - 2.0) < 1e-9
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert synth_rates(5.0, [], 4) == [1.0] * 4 and synth_rates(1.0, [], 4) == [0.0] * 4
    assert synth_rates(-1.0, [], 4) == []
    assert conditional([0.5, 0.25, 0.0, 0.0]) == [0.5, 0.5, 0.0, 0.0]


@pytest.mark.parametrize("length, rates, n_max, fragment", [
    (2.0, [0.5], 1, "exclude"), (-1.0, [0.5, 0.6], 2, "increase"), (-1.0, [0.5], 2, "2 values"),
    (-1.0, [1.5], 1, "within"), (9.0, [], 4, r"within \[1, 5\]"), (2.0, [], 0, "at least one"),
])
def test_synthetic_rates_are_checked(length, rates, n_max, fragment):
    with pytest.raises(SynthError, match=fragment):
        synth_rates(length, rates, n_max)


# --- which types run ---

def test_the_types_a_configuration_runs_in_llama_servers_order():
    assert SpeculativeConfig().active_types == []
    assert SpeculativeConfig(draft_model="d.gguf").active_types == ["draft-simple"]  # -md alone
    assert SpeculativeConfig(draft_model="d.gguf", types=["none"]).active_types == []
    assert SpeculativeConfig(default_setup=True).active_types == ["ngram-mod"]
    spec = SpeculativeConfig(types=["draft-simple", "ngram-cache", "ngram-simple", "ngram-simple"])
    assert SpecParams.of(spec).types == ("ngram-simple", "draft-simple")  # not built: left out
    assert spec.notices == ["--spec-type ngram-cache: the ngram-cache type (lookup cache files, -lcs / -lcd) is not "
                            "built; it drafts nothing here (the other types run)"]


def test_timings_show_drafts_only_for_a_task_that_drafted():
    assert "draft_n" not in Timings(predicted_n=3).as_dict()
    t = Timings(predicted_n=3, draft_n=8, draft_n_accepted=5).as_dict()
    assert (t["draft_n"], t["draft_n_accepted"]) == (8, 5)


# --- the step planner (engine/drafts/planner.py) ---

from llamaserve.engine.drafts.planner import DEFAULT_FIXED, StepCost, acceptance, plan  # noqa: E402

KNOWN = 100  # reached positions: past exploration


@pytest.mark.parametrize("proposed, rates, n_base, fixed, expected", [
    # one client, a fixed part worth two positions: tokens are added while each raises tokens/s
    ([16], [0.8], 1, 2.0, [3]),
    # four clients fill the fixed part themselves: one token each is all that still pays
    ([16, 16, 16, 16], [0.79] * 4, 4, 2.0, [1, 1, 1, 1]),
    # no fixed part: a position costs what it brings unless every token is accepted
    ([8], [0.9], 1, 0.0, [0]),
    ([8], [1.0], 1, 0.0, [0]),  # (equal: nothing gained, not taken)
    # the likelier slot drafts first and longer
    ([8, 8], [0.95, 0.3], 2, 2.0, [6, 0]),
    # nothing proposed, nothing verified
    ([0, 5], [0.9, 0.9], 2, 2.0, [0, 4]),
])
def test_plan_adds_draft_tokens_while_they_pay(proposed, rates, n_base, fixed, expected):
    assert plan(proposed, rates, [KNOWN] * len(proposed), n_base, fixed) == expected


def test_a_slot_whose_rate_is_unknown_verifies_its_whole_draft():
    assert plan([6, 6], [0.1, 0.1], [0, KNOWN], 2, 2.0) == [6, 0]


def test_acceptance_starts_at_one_in_two_and_follows_what_was_kept():
    assert acceptance(0, 0) == 0.5
    assert acceptance(98, 97) == pytest.approx(0.98)


def test_step_cost_finds_the_fixed_part_of_a_step():
    cost = StepCost()
    assert cost.fixed_ratio() == DEFAULT_FIXED  # nothing measured yet
    for _ in range(3):
        for n in range(1, 9):
            cost.record(n, 0.010 + 0.005 * n)
    assert cost.fixed_ratio() == pytest.approx(2.0)
    narrow = StepCost()
    for _ in range(20):
        narrow.record(4, 0.02)
        narrow.record(5, 0.03)
    assert narrow.fixed_ratio() == DEFAULT_FIXED  # one or two sizes: not told apart
