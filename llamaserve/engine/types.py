"""The vocabulary that crosses the engine boundary: Task in, Result out."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable

from llamaserve.config import SPEC_TYPES_NOT_BUILT

DEFAULT_SAMPLERS = ("penalties", "dry", "top_n_sigma", "top_k", "typ_p", "top_p", "min_p", "xtc", "temperature")
DEFAULT_DRY_BREAKERS = ("\n", ":", '"', "*")
RANDOM_SEED = 0xFFFFFFFF

_task_ids = itertools.count()

# What a Task asks the engine for.
COMPLETION = "completion"  # generate text from the prompt
EMBEDDING = "embedding"  # the prompt's pooled embedding (one vector per token with pooling "none")
RERANK = "rerank"  # the relevance score of a reranker's (query, document) prompt
TASK_KINDS = (COMPLETION, EMBEDDING, RERANK)


@dataclass(frozen=True)
class BudgetSpec:
    """A reasoning budget (engine/reasoning_budget.py): the limit and the marker token sequences."""

    tokens: int  # budget: the most tokens inside the think block (>= 0)
    start: tuple[int, ...]  # the opening marker
    end: tuple[int, ...]  # the closing marker
    forced: tuple[int, ...]  # what is forced when the budget runs out (message + closing marker)
    open_in_prompt: bool = False  # the prompt ends inside the think block (the template opened it)


@dataclass
class SamplingParams:
    temperature: float = 0.8
    dynatemp_range: float = 0.0
    dynatemp_exponent: float = 1.0
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    typical_p: float = 1.0
    top_n_sigma: float = -1.0
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    dry_multiplier: float = 0.0
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    dry_penalty_last_n: int = -1
    dry_sequence_breakers: list[str] = field(default_factory=lambda: list(DEFAULT_DRY_BREAKERS))
    xtc_probability: float = 0.0
    xtc_threshold: float = 0.1
    mirostat: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    # adaptive-p (libllama): picks the token instead of the final dist draw, only when "adaptive_p" is
    # among the samplers (llama.cpp's rule); a negative target leaves the distribution as it is
    adaptive_target: float = -1.0
    adaptive_decay: float = 0.9
    seed: int = RANDOM_SEED
    min_keep: int = 0
    ignore_eos: bool = False
    logit_bias: list[tuple[int, float]] = field(default_factory=list)
    n_probs: int = 0
    post_sampling_probs: bool = False
    samplers: list[str] = field(default_factory=lambda: list(DEFAULT_SAMPLERS))
    grammar: str = ""
    grammar_lazy: bool = False  # the grammar engages only once a trigger pattern matches the output
    grammar_triggers: list[str] = field(default_factory=list)  # regexes; the first group starts the grammar
    reasoning: BudgetSpec | None = None  # cap on the tokens spent thinking

    @property
    def is_greedy(self) -> bool:
        """True when sampling is argmax over the logits after the logit biases: temperature <= 0,
        and no sampler that keeps state (penalties, DRY, mirostat), that may drop the best token
        (typical-p, XTC, infill) or that constrains it (a grammar). The others (top-k, top-p,
        min-p, top-n-sigma, dynamic temperature) always keep the best token."""
        penalties = self.repeat_last_n != 0 and (
            self.repeat_penalty != 1.0 or self.presence_penalty != 0.0 or self.frequency_penalty != 0.0)
        return (
            self.temperature <= 0.0
            and self.mirostat == 0
            and not self.grammar
            and not penalties
            and self.dry_multiplier == 0.0
            and self.typical_p >= 1.0
            and (self.xtc_probability <= 0.0 or self.xtc_threshold > 0.5)
            and "infill" not in self.samplers
        )


# The order llama-server tries speculative decoding types in (the first that drafts wins).
SPEC_TYPE_ORDER = ("ngram-simple", "ngram-map-k", "ngram-map-k4v", "ngram-mod", "ngram-cache", "draft-simple",
                   "draft-eagle3", "draft-mtp", "draft-dflash", "draft-dspark")


def spec_type_order(names) -> tuple[str, ...]:
    """The type names given (without "none"), each once, in the order they are tried."""
    given = set(names)
    return tuple(t for t in SPEC_TYPE_ORDER if t in given)


@dataclass(frozen=True)
class SpecParams:
    """A task's speculative decoding settings (engine/speculative.py); the protocol layer fills in the
    server's where the request names none."""

    types: tuple[str, ...] = ()  # draft sources, tried in llama-server's order; () = no drafting
    n_max: int = 3  # draft model: most tokens drafted at once
    n_min: int = 0  # draft model: a shorter draft is not verified
    p_min: float = 0.0  # draft model: the draft ends at a token the draft model gives less than this
    ngram_size_n: int = 12  # ngram-simple: length of the n-gram looked up
    ngram_size_m: int = 48  # ngram-simple: most tokens drafted after it

    @classmethod
    def of(cls, spec) -> "SpecParams":
        """The server's settings, from Config.spec (a SpeculativeConfig); types that are not built are left out."""
        types = spec_type_order(t for t in spec.active_types if t not in SPEC_TYPES_NOT_BUILT)
        return cls(types=types, n_max=spec.draft_n_max, n_min=spec.draft_n_min, p_min=spec.draft_p_min,
                   ngram_size_n=spec.ngram_simple_size_n, ngram_size_m=spec.ngram_simple_size_m)


@dataclass
class Timings:
    cache_n: int = 0
    prompt_n: int = 0
    prompt_ms: float = 0.0
    predicted_n: int = 0
    predicted_ms: float = 0.0
    draft_n: int = 0  # tokens drafted for the task (speculative decoding)
    draft_n_accepted: int = 0  # ... of which the model accepted

    def as_dict(self) -> dict[str, Any]:
        out = {
            "cache_n": self.cache_n,
            "prompt_n": self.prompt_n,
            "prompt_ms": self.prompt_ms,
            "prompt_per_token_ms": self.prompt_ms / self.prompt_n if self.prompt_n else 0.0,
            "prompt_per_second": 1e3 * self.prompt_n / self.prompt_ms if self.prompt_ms > 0 else 0.0,
            "predicted_n": self.predicted_n,
            "predicted_ms": self.predicted_ms,
            # the first token comes with the prompt batch, so rates count the n - 1 steps after it
            "predicted_per_token_ms": self.predicted_ms / (self.predicted_n - 1) if self.predicted_n > 1 else 0.0,
            "predicted_per_second": 1e3 * (self.predicted_n - 1) / self.predicted_ms if self.predicted_n > 1 and self.predicted_ms > 0 else 0.0,
        }
        if self.draft_n > 0:  # as llama-server: only for a task that drafted
            out["draft_n"] = self.draft_n
            out["draft_n_accepted"] = self.draft_n_accepted
        return out


@dataclass
class PromptProgress:
    """How far a prompt's evaluation is (return_progress): sent before the first token and after each step."""

    total: int  # prompt tokens
    cache: int  # of those, reused from the cache
    processed: int  # evaluated or reused so far
    time_ms: int  # since the task started

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "cache": self.cache, "processed": self.processed, "time_ms": self.time_ms}


@dataclass
class TokenProb:
    """One sampled token with its top alternatives (probabilities or logprobs)."""

    id: int
    piece: bytes
    value: float  # logprob, or prob when post_sampling
    top: list[tuple[int, bytes, float]]


@dataclass
class Result:
    """A partial (done=False) or final (done=True) outcome of a task."""

    task: "Task"
    text: str = ""
    tokens: list[int] = field(default_factory=list)
    probs: list[TokenProb] = field(default_factory=list)
    done: bool = False
    stop_type: str = "none"  # none | eos | limit | word
    stopping_word: str = ""
    truncated: bool = False
    n_prompt: int = 0
    n_cached: int = 0
    n_decoded: int = 0
    timings: Timings | None = None
    id_slot: int = -1
    error: Exception | None = None
    embedding: list[list[float]] | None = None  # EMBEDDING: one pooled vector, or one per prompt token
    score: float | None = None  # RERANK: the classifier head's first output
    progress: PromptProgress | None = None  # a prompt-progress update (return_progress): no text, not done


@dataclass(eq=False)
class Task:
    """What to run: prompt tokens plus generation limits and sampling (or, by kind, an embedding or a score)."""

    prompt: list[int]
    params: SamplingParams = field(default_factory=SamplingParams)
    n_predict: int = -1
    stop: list[str] = field(default_factory=list)
    cache_prompt: bool = True
    cache_reuse: int = 0  # min chunk size for KV-shift reuse (0 = off)
    id_slot: int = -1
    n_keep: int = 0  # prompt tokens kept on context shift (-1 = all)
    n_discard: int = 0  # tokens dropped per shift (0 = half of those after n_keep)
    t_max_predict_ms: int = -1
    stream: bool = False  # emit partial results as tokens come
    timings_per_token: bool = False
    return_progress: bool = False  # streamed: a PromptProgress result at the start and after each prompt step
    special_pieces: dict[int, bytes] | None = None  # special tokens shown as their text (tool-call markers)
    sink: Callable[[Result], None] | None = None  # set by the caller; called via the scheduler's deliver hook
    index: int = 0  # position in a multi-prompt request
    kind: str = COMPLETION  # one of TASK_KINDS
    embd_normalize: int = 2  # EMBEDDING: -1 none, 0 max-abs int16, 1 taxicab, 2 euclidean, >2 p-norm
    lora: dict[int, float] | None = None  # adapter id -> scale for this request (others 0); None = the server's scales
    lora_scales: tuple[float, ...] | None = None  # set by the engine when the task starts: every adapter's scale
    # Tasks with the same prompt that may share its evaluation (the n choices of one OpenAI prompt):
    # the same object on each; the first to start evaluates it, the others copy its KV cache.
    prompt_group: object | None = None
    spec: SpecParams | None = None  # speculative decoding; None = the server's settings
    # images and audio in the prompt (engine/media.py MediaSpan: where each sits; their positions in
    # `prompt` hold pseudo ids), and what keeps their libmtmd chunks alive
    media: tuple = ()
    media_owner: object | None = field(default=None, repr=False)
    id: int = field(default_factory=lambda: next(_task_ids))
    cancelled: bool = False

    def cancel(self) -> None:
        # A plain attribute write is atomic under the GIL; the scheduler polls it each step.
        self.cancelled = True


@dataclass(frozen=True)
class SlotState:
    """What one slot is doing, copied on the scheduler thread (Scheduler.slot_states): no live engine object."""

    id: int
    n_ctx: int
    busy: bool
    task: Task | None  # the task it serves (its params are read, never changed)
    n_prompt: int  # the task's prompt tokens
    n_cached: int  # of them, reused from the cache
    n_decoded: int  # tokens generated so far
    n_past: int  # tokens in the slot's KV sequence
    n_shared: int  # of them, a prefix attached from another slot's cells (see Slot.n_shared)
    has_new_line: bool  # the generated text holds a newline
    speculative: bool = False  # the slot's task drafts (speculative decoding)
    n_draft: int = 0  # tokens drafted for its task so far
    n_draft_accepted: int = 0  # ... of which accepted


@dataclass(frozen=True)
class PromptCacheInfo:
    """The host-memory prompt cache, for /props and /metrics (numbers read without stopping the scheduler)."""

    limit_mib: int  # --cache-ram: -1 = no limit, 0 = off
    idle_slots: bool  # --cache-idle-slots in effect
    entries: int
    tokens: int
    bytes: int


@dataclass(frozen=True)
class Occupancy:
    """Slots in use and tasks waiting for one, and the KV cells they hold, read without stopping the
    scheduler (a soft snapshot: the counters may move while it is taken)."""

    busy: int
    free: int
    queued: int
    kv_size: int = 0  # cells in the KV cache (n_ctx, all slots together)
    kv_tokens: int = 0  # cells held by the slots' sequences, idle slots' cached prompts too (a prefix shared once)
    kv_tokens_busy: int = 0  # cells held by the sequences of busy slots (what running requests need)
