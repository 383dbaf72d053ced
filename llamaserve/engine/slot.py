"""A slot: one sequence of the llama_context's KV cache, the tokens in it, and the task it serves.

The KV operations here keep `cache` and the sequence in step; the scheduler decides when to use them.
"""

from __future__ import annotations

import logging

import llama_cpp.llama_cpp as ll
import numpy as np

from llamaserve.engine.lora import Scales
from llamaserve.engine.reasoning_budget import ReasoningBudget
from llamaserve.engine.sampler import SamplerChain
from llamaserve.engine.text_stream import TextStream
from llamaserve.engine.types import Task

log = logging.getLogger("llamaserve.engine")


def common_prefix(a, b) -> int:
    """Length of the common prefix of two token sequences (lists or int arrays)."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    x = np.asarray(a[:n], dtype=np.int64)
    y = np.asarray(b[:n], dtype=np.int64)
    diff = np.flatnonzero(x != y)
    return int(diff[0]) if len(diff) else n


class Slot:
    IDLE, PROMPT, GENERATE = "idle", "prompt", "generate"

    def __init__(self, sid: int, n_ctx: int):
        self.id = sid
        self.n_ctx = n_ctx
        self.cache: list[int] = []  # tokens in this slot's KV sequence, in order
        self.lora: Scales = ()  # the LoRA scales the cache was computed with (and its task runs with)
        # the first n_shared tokens of the sequence were attached from another slot's cells (seq_cp),
        # which a unified KV cache then holds once for both (as long as the other keeps them)
        self.n_shared = 0
        # (entry, n): the host prompt cache entry known to hold this sequence as it is while it has
        # n tokens (see PromptReuse._save); None once the sequence is cut or moved
        self.in_host = None
        self.state = Slot.IDLE
        self.task: Task | None = None
        self.t_last_used = 0.0
        self._reset_task_state()

    def _reset_task_state(self) -> None:
        self.chain: SamplerChain | None = None
        self.leader: Slot | None = None  # a slot evaluating this task's prompt prefix for it (see prompt_reuse)
        self.follow_n = 0  # with a leader: the prefix length taken from it once it has evaluated that far
        self.budget: ReasoningBudget | None = None
        self.drafting = None  # speculative decoding state of the task (engine/speculative.py: SlotDrafting)
        self.text: TextStream | None = None
        self.prompt_np = np.zeros(0, dtype=np.int32)
        self.n_prompt = 0
        self.n_cached = 0
        self.n_decoded = 0
        self.next_token = -1
        self.i_batch = -1
        self.generated: list[int] = []
        self.probs: list = []
        self.unsent_tokens: list[int] = []
        self.unsent_probs: list = []
        self.truncated = False
        self.has_new_line = False
        self.t_start = 0.0
        self.t_prompt_done = 0.0

    @property
    def n_past(self) -> int:
        return len(self.cache)

    @property
    def busy(self) -> bool:
        return self.task is not None

    # --- the slot's KV sequence (self.cache mirrors it token for token) ---

    def forget_from(self, mem, keep: int) -> bool:
        """Drop the sequence from position `keep` on; False where libllama cannot cut it there
        (recurrent state holds only the whole sequence) and nothing was removed."""
        if keep < self.n_past:
            if not ll.llama_memory_seq_rm(mem, self.id, -1 if keep == 0 else keep, -1):
                return False
            del self.cache[keep:]
            self.n_shared = min(self.n_shared, keep)
            self.in_host = None
        return True

    def discard(self, mem, n_keep: int, n_discard: int) -> None:
        """Context shift: drop n_discard tokens after the first n_keep and slide the rest down."""
        ll.llama_memory_seq_rm(mem, self.id, n_keep, n_keep + n_discard)
        ll.llama_memory_seq_add(mem, self.id, n_keep + n_discard, self.n_past, -n_discard)
        del self.cache[n_keep : n_keep + n_discard]
        self.n_shared = min(self.n_shared, n_keep)
        self.in_host = None

    def shift_context(self, mem, add_bos: bool) -> bool:
        """Make room at the end of a full slot (--context-shift): keep the first n_keep tokens of its
        task (and BOS), drop n_discard after them, slide the rest down. False when nothing could be dropped."""
        task = self.task
        n_keep = self.n_prompt if task.n_keep < 0 else min(task.n_keep, self.n_prompt)
        if add_bos:
            n_keep += 1
        n_keep = min(n_keep, self.n_ctx - 4)
        n_left = self.n_past - n_keep
        n_discard = min(task.n_discard or n_left // 2, n_left - 1)
        if n_discard <= 0:
            return False
        self.discard(mem, n_keep, n_discard)
        self.truncated = True
        log.debug("slot %d: context shift, kept %d, discarded %d", self.id, n_keep, n_discard)
        return True

    def copy_prefix(self, mem, source: Slot, n: int, unified_kv: bool) -> None:
        """Make this sequence the first n tokens of `source`'s (llama_memory_seq_cp)."""
        ll.llama_memory_seq_rm(mem, self.id, -1, -1)
        if unified_kv:
            ll.llama_memory_seq_cp(mem, source.id, self.id, 0, n)
        else:  # across KV streams libllama copies whole sequences only
            ll.llama_memory_seq_cp(mem, source.id, self.id, -1, -1)
            ll.llama_memory_seq_rm(mem, self.id, n, -1)
        self.cache[:] = source.cache[:n]
        self.lora = source.lora
        self.n_shared = n if unified_kv else 0
        self.in_host = None

    def reuse_chunks(self, mem, prompt: list[int], keep: int, min_chunk: int) -> int:
        """--cache-reuse: move cached runs of >= min_chunk tokens that reappear later in the
        prompt into place with a KV shift, instead of evaluating them again. Returns the new
        number of reusable prompt tokens."""
        cache = self.cache
        head_c = head_p = keep
        while head_c < len(cache) and head_p < len(prompt):
            n = 0
            while head_c + n < len(cache) and head_p + n < len(prompt) and cache[head_c + n] == prompt[head_p + n]:
                n += 1
            if n >= min_chunk:
                ll.llama_memory_seq_rm(mem, self.id, head_p, head_c)
                ll.llama_memory_seq_add(mem, self.id, head_c, head_c + n, head_p - head_c)
                cache[head_p : head_p + n] = cache[head_c : head_c + n]
                self.n_shared = min(self.n_shared, head_p)
                self.in_host = None
                head_p += n
                head_c += n
            else:
                head_c += 1
        if head_p > keep:
            log.debug("slot %d: reused %d cached tokens by KV shifting", self.id, head_p - keep)
            self.forget_from(mem, head_p)
        return head_p
