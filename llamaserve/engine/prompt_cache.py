"""The host-memory prompt cache (--cache-ram): slot sequence states kept in RAM, keyed by their tokens
and the LoRA scales they were computed with.

A slot about to lose what it holds (another request takes it) has its state copied here
(llama_state_seq_get_data); a later request whose prompt continues a stored entry further than any
slot's cache gets that state copied back into its slot (llama_state_seq_set_data) and evaluates only
the rest. The store is bounded in bytes and drops the least recently used entry first. It never keeps
an entry whose tokens begin another entry of the same scales: the longer one serves both.

Only the scheduler thread touches it; readers elsewhere take its counters as they are (see stats.py).
"""

from __future__ import annotations

import ctypes
import logging
import time
from dataclasses import dataclass, field

import llama_cpp.llama_cpp as ll
import numpy as np

from llamaserve.engine.lora import Scales
from llamaserve.engine.slot import common_prefix

log = logging.getLogger("llamaserve.engine")

MIB = 1024 * 1024


@dataclass(eq=False)
class Entry:
    tokens: np.ndarray  # int32, the sequence the state holds, from position 0
    lora: Scales
    data: ctypes.Array  # libllama's serialised sequence state
    t_used: float = field(default_factory=time.monotonic)
    dropped: bool = False  # no longer in the store (evicted, or served by a longer entry)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)


class HostCache:
    def __init__(self, limit_mib: int):
        """limit_mib as --cache-ram: MiB of host memory, -1 = no limit (0 = off is the caller's to skip)."""
        self.limit = None if limit_mib < 0 else limit_mib * MIB
        self.entries: list[Entry] = []
        self.bytes = 0
        self.tokens = 0
        self.n_evicted = 0

    def lookup(self, prompt, lora: Scales) -> tuple[Entry | None, int]:
        """The entry sharing the longest prefix with `prompt` (same scales) and that length."""
        best, best_n = None, 0
        prompt = np.asarray(prompt, dtype=np.int32)  # once, not once per entry
        for entry in self.entries:
            if entry.lora != lora:
                continue
            n = common_prefix(entry.tokens, prompt)
            if n > best_n:
                best, best_n = entry, n
        return best, best_n

    def covering(self, tokens, lora: Scales) -> Entry | None:
        """The entry of these scales that begins with all of `tokens` (saving them again would add nothing)."""
        entry, n = self.lookup(tokens, lora)
        if entry is not None and n == len(tokens):
            entry.t_used = time.monotonic()
            return entry
        return None

    def touch(self, entry: Entry) -> None:
        entry.t_used = time.monotonic()

    def save(self, ctx, seq_id: int, tokens: list[int], lora: Scales) -> tuple[Entry | None, bool]:
        """Copy sequence `seq_id` (holding `tokens`) into the store. Returns the entry that holds the
        tokens (None where they do not fit under the limit at all, or libllama could not serialise
        them) and whether it was stored now (False: an entry held them already)."""
        held = self.covering(tokens, lora) if tokens else None
        if held is not None or not tokens:
            return held, False
        size = ll.llama_state_seq_get_size(ctx, seq_id)
        if size == 0 or (self.limit is not None and size > self.limit):
            return None, False
        data = (ctypes.c_uint8 * size)()
        if ll.llama_state_seq_get_data(ctx, data, size, seq_id) == 0:
            return None, False
        array = np.asarray(tokens, dtype=np.int32)
        # entries this one extends are served by it from now on
        for old in [e for e in self.entries if e.lora == lora and common_prefix(e.tokens, array) == e.n_tokens]:
            self._drop(old)
        entry = Entry(array, lora, data)
        self.entries.append(entry)
        self.bytes += entry.size
        self.tokens += entry.n_tokens
        self._evict(keep=entry)
        log.debug("updating prompt cache: saved %d tokens (%.1f MiB); %d entries, %.1f MiB", entry.n_tokens,
                  entry.size / MIB, len(self.entries), self.bytes / MIB)
        return entry, True

    def restore(self, ctx, entry: Entry, seq_id: int) -> bool:
        """Load an entry's state into the (empty) sequence `seq_id`. False where libllama found no room."""
        entry.t_used = time.monotonic()
        return ll.llama_state_seq_set_data(ctx, entry.data, entry.size, seq_id) != 0

    def _drop(self, entry: Entry) -> None:
        entry.dropped = True
        self.entries.remove(entry)
        self.bytes -= entry.size
        self.tokens -= entry.n_tokens

    def _evict(self, keep: Entry) -> None:
        if self.limit is None:
            return
        while self.bytes > self.limit:
            victim = min((e for e in self.entries if e is not keep), key=lambda e: e.t_used, default=None)
            if victim is None:
                return
            self._drop(victim)
            self.n_evicted += 1
            log.debug("prompt cache: evicted %d tokens (least recently used)", victim.n_tokens)
