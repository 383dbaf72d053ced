"""The scheduler's running totals (llama-server's server_metrics), exposed by GET /metrics.

Plain numbers, written only by the scheduler thread; readers on other threads take them as they
are (each attribute read is atomic under the GIL, and a scrape may be a step behind: no lock).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class EngineStats:
    t_start: float = field(default_factory=time.time)  # unix time the scheduler was created
    prompt_tokens: int = 0  # prompt tokens decoded; tokens reused from a slot's cache are not
    prompt_tokens_cached: int = 0  # prompt tokens reused from any cache (no decode): the three below and the slot's own
    prompt_tokens_attached: int = 0  # of them, attached from another slot's sequence (llama_memory_seq_cp)
    prompt_tokens_restored: int = 0  # of them, copied back from the host-memory prompt cache
    cache_hits: int = 0  # completion requests that started with part of their prompt cached
    cache_misses: int = 0  # ... and those that evaluated all of it
    prompt_seconds: float = 0.0  # time in the decodes that held prompt tokens
    predicted_tokens: int = 0  # tokens sampled, counted when their task ends (finished or cancelled)
    predicted_steps: int = 0  # decode steps behind them: a task's first token comes with its prompt batch
    predicted_seconds: float = 0.0  # from each task's first sampled token to its end
    n_decode: int = 0  # successful llama_decode calls
    n_busy_slots: int = 0  # busy slots, summed over those calls
    n_tokens_max: int = 0  # longest slot sequence (prompt + generation) seen after a decode
    draft_tokens: int = 0  # speculative decoding: tokens drafted and verified
    draft_accepted: int = 0  # ... of which the model accepted
    draft_verifications: int = 0  # drafts verified
    accepted_per_position: list[int] = field(default_factory=list)  # [i]: drafts whose token i was accepted

    def decoded(self, n_prompt_tokens: int, seconds: float, n_busy: int, longest: int) -> None:
        self.n_decode += 1
        self.n_busy_slots += n_busy
        if longest > self.n_tokens_max:
            self.n_tokens_max = longest
        if n_prompt_tokens:
            self.prompt_tokens += n_prompt_tokens
            self.prompt_seconds += seconds

    def drafted(self, n_drafted: int, n_accepted: int) -> None:
        self.draft_tokens += n_drafted
        self.draft_accepted += n_accepted
        self.draft_verifications += 1
        per = self.accepted_per_position
        if len(per) < n_accepted:
            per.extend([0] * (n_accepted - len(per)))
        for i in range(n_accepted):
            per[i] += 1

    def generated(self, n_tokens: int, seconds: float) -> None:
        self.predicted_tokens += n_tokens
        self.predicted_steps += max(0, n_tokens - 1)
        self.predicted_seconds += seconds
