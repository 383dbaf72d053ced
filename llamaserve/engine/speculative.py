"""Speculative decoding: which draft sources run, and the drafts each generating slot proposes.

A slot's draft goes into the step's one llama_decode after its pending token, with logits at every
position; the scheduler then samples each position with the slot's own chain and keeps the drafted
tokens for as long as the chain picks them (Scheduler._verify). That keeps the output the model's:
greedy output is the greedy output, and sampled output follows the target distribution. (The draft
model drafts greedily, so its draft distribution is one token with probability 1; standard speculative
sampling then accepts with the target's probability of that token and otherwise draws from the rest,
which is exactly "sample with the chain, keep the draft while they agree".)

Types, tried in llama-server's order until one drafts: ngram-simple, ngram-mod (n-gram lookups,
drafts/ngram.py), draft-simple (a draft model, drafts/draft_model.py). The others parse: ngram-map-k,
ngram-map-k4v and ngram-cache are not built and are announced at start-up; the draft-head types
(eagle3, mtp, dflash, dspark) stop start-up.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from llamaserve.config import SPEC_TYPES_NOT_BUILT as NOT_BUILT
from llamaserve.config import Config
from llamaserve.engine.drafts.budget import DraftBudget
from llamaserve.engine.drafts.planner import StepCost, acceptance, plan
from llamaserve.engine.drafts.draft_model import DraftModel, DraftRequest
from llamaserve.engine.drafts.ngram import NgramMod, ngram_simple
from llamaserve.engine.drafts.synthetic import SynthError, conditional, synth_rates
from llamaserve.engine.types import SpecParams, Task
from llamaserve.errors import InvalidRequest, ServerError

log = logging.getLogger("llamaserve.engine")

ORDER = ("ngram-simple", "ngram-map-k", "ngram-map-k4v", "ngram-mod", "ngram-cache", "draft-simple")
NGRAM_TYPES = ("ngram-simple", "ngram-mod")  # need nothing loaded: any request may ask for them
DRAFT_HEADS = ("draft-eagle3", "draft-mtp", "draft-dflash", "draft-dspark")


class SpeculativeError(ServerError):
    """The speculative decoding setup cannot run: start-up stops with this reason."""


def default_params(config: Config) -> SpecParams:
    """The server's settings, which a request's `speculative` fields override one by one."""
    s = config.spec
    types = tuple(t for t in ORDER if t in s.active_types and t not in NOT_BUILT)
    return SpecParams(types=types, n_max=s.draft_n_max, n_min=s.draft_n_min, p_min=s.draft_p_min,
                      ngram_size_n=s.ngram_simple_size_n, ngram_size_m=s.ngram_simple_size_m)


@dataclass
class SlotDrafting:
    """One task's drafting state on its slot."""

    params: SpecParams
    budget: DraftBudget
    rng: random.Random | None = None  # synthetic acceptance draws
    n_drafted: int = 0
    n_accepted: int = 0
    n_reached: int = 0  # draft positions verification reached (all before them kept): planner.acceptance
    source: str = ""  # the type that made the current draft
    draft: list[int] = field(default_factory=list)  # this step's draft (in the batch after the pending token)
    i_batch: list[int] = field(default_factory=list)  # batch indices: the pending token, then each draft token


class Speculator:
    """Owned by the scheduler thread, like the contexts it drafts with."""

    def __init__(self, config: Config, target, n_slots: int):
        spec = config.spec
        asked = spec.active_types
        heads = [t for t in asked if t in DRAFT_HEADS]
        if heads:
            raise SpeculativeError(
                f"--spec-type {heads[0]}: this type drafts with extra heads of the target model (or a head file), "
                "which llamaserve does not run; use draft-simple with a draft model (-md) or an ngram-* type")
        if "draft-simple" in asked and not spec.draft_model:
            raise SpeculativeError("--spec-type draft-simple needs a draft model (-md FNAME)")
        self.defaults = default_params(config)
        self.types = self.defaults.types
        self.unbuilt = {t: NOT_BUILT[t] for t in asked if t in NOT_BUILT}
        self.draft_model: DraftModel | None = None
        if spec.draft_model and "draft-simple" in self.types:
            self.draft_model = DraftModel(
                config, target.vocab, target.n_ctx, target.n_batch, target.n_ubatch, n_slots,
                target.unified_kv, target.n_vocab)
        elif spec.draft_model:
            log.warning("-md %s is not loaded: --spec-type does not name draft-simple", spec.draft_model)
        self.config = spec
        self.mod: NgramMod | None = None
        self.step_cost = StepCost()  # the scheduler records its generation steps here
        try:
            rates = synth_rates(spec.synth_len, spec.synth_rates, self.n_max(self.defaults))
        except SynthError as exc:
            raise SpeculativeError(str(exc)) from None
        self.synth = conditional(rates)
        if self.synth:
            log.warning("synthetic speculative acceptance is on (benchmarking): the output is not the model's")
        if self.types:
            log.info("speculative decoding: %s", ", ".join(self.types))

    @property
    def enabled(self) -> bool:
        """The server drafts by default (requests may still ask for n-gram drafts when it does not)."""
        return bool(self.types)

    def n_max(self, p: SpecParams) -> int:
        """The most tokens one draft of these settings may hold."""
        out = 0
        for t in p.types:
            if t == "ngram-simple":
                out = max(out, p.ngram_size_m)
            elif t == "ngram-mod":
                out = max(out, self.config.ngram_mod_n_max)
            elif t == "draft-simple":
                out = max(out, p.n_max)
        return out

    def refusal(self, task: Task) -> ServerError | None:
        """Why a task's own speculative settings cannot run here (None: they can)."""
        p = task.spec
        if p is None:
            return None
        for t in p.types:
            if t in NOT_BUILT:
                return InvalidRequest(f"speculative type '{t}': {NOT_BUILT[t]}")
            if t in DRAFT_HEADS:
                return InvalidRequest(f"speculative type '{t}' needs draft heads, which llamaserve does not run")
            if t == "draft-simple" and self.draft_model is None:
                return InvalidRequest("speculative type 'draft-simple' needs a draft model: start the server with -md")
        return None

    # --- per task ---

    def start(self, task: Task) -> SlotDrafting | None:
        p = task.spec or self.defaults
        if not p.types:
            return None
        n_max = self.n_max(p)
        if n_max <= 0:
            return None
        n_min = p.n_min if p.types == ("draft-simple",) else 0
        rng = random.Random(task.params.seed) if self.synth else None
        return SlotDrafting(p, DraftBudget(n_max, n_min), rng)

    def begin(self, seq: int, state: SlotDrafting) -> None:
        """The slot's prompt is evaluated: ngram-mod learns its n-grams from the start."""
        if "ngram-mod" in state.params.types:
            self._mod().forget(seq)

    def _mod(self) -> NgramMod:
        if self.mod is None:
            s = self.config
            self.mod = NgramMod(s.ngram_mod_n_match, s.ngram_mod_n_min, s.ngram_mod_n_max)
        return self.mod

    # --- per step ---

    def propose(self, wants: list[tuple[int, SlotDrafting, Callable[[], np.ndarray], int]]) -> None:
        """Fill each state's `draft` for this step. `wants`: (slot id, state, its history with the
        pending token last (built only when it may draft), the most tokens there is room for)."""
        model_requests: list[tuple[DraftRequest, SlotDrafting]] = []
        for seq, state, history_of, room in wants:
            state.draft = []
            n = min(room, state.budget.allowed())
            if n <= 0:
                continue
            history = history_of()
            p = state.params
            for t in p.types:
                draft: list[int] = []
                if t == "ngram-simple":
                    draft = ngram_simple(history, p.ngram_size_n, p.ngram_size_m)
                elif t == "ngram-mod":
                    draft = self._mod().draft(seq, history)
                elif t == "draft-simple" and self.draft_model is not None:
                    model_requests.append((DraftRequest(seq, history, min(n, p.n_max), p.n_min, p.p_min), state))
                    break
                if draft:
                    state.draft, state.source = draft[:n], t
                    break
        if model_requests:
            drafts = self.draft_model.draft([r for r, _ in model_requests])
            for r, state in model_requests:
                state.draft, state.source = drafts.get(r.seq, []), "draft-simple"

    def trim(self, states: list[SlotDrafting], n_base: int) -> None:
        """Cut this step's drafts to what is worth verifying with the step's other positions (n_base,
        one per generating slot) on this machine (drafts/planner.py)."""
        if not states or self.synth:  # synthetic acceptance (benchmarking) verifies what it drafted
            return
        ks = plan([len(s.draft) for s in states], [acceptance(s.n_reached, s.n_accepted) for s in states],
                  [s.n_reached for s in states], n_base, self.step_cost.fixed_ratio())
        for state, k in zip(states, ks):
            del state.draft[k:]

    def verified(self, state: SlotDrafting, n_accepted: int) -> None:
        """A draft was verified: n_accepted of its tokens kept."""
        state.n_reached += n_accepted + (n_accepted < len(state.draft))
        state.budget.verified(len(state.draft), n_accepted)
        if state.source == "ngram-mod" and self.mod is not None and n_accepted == 0 and state.budget.misses >= 5:
            # its table keeps predicting what this text does not do: start it afresh (as llama-server)
            self.mod.reset()

    def synth_accepts(self, state: SlotDrafting, position: int) -> bool:
        """Synthetic acceptance: whether this draft position is kept, whatever the model says."""
        return state.rng.random() < self.synth[position] if position < len(self.synth) else False

    def close(self) -> None:
        if self.draft_model is not None:
            self.draft_model.close()
            self.draft_model = None
