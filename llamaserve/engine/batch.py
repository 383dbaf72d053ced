"""A llama_batch whose arrays are numpy buffers, filled a slice at a time.

llama_batch_init gives one seq_id allocation per token, so each token would
need its own Python write. Here seq_id points into a table of per-sequence
pointers and every field is a numpy view, so a prompt chunk of k tokens is
four slice assignments, not k Python iterations.
"""

from __future__ import annotations

import ctypes

import llama_cpp.llama_cpp as ll
import numpy as np


class Batch:
    def __init__(self, capacity: int, n_seq: int):
        self.capacity = capacity
        self.token = np.zeros(capacity, dtype=np.int32)
        self.pos = np.zeros(capacity, dtype=np.int32)
        self.n_seq_id = np.ones(capacity, dtype=np.int32)
        self.logits = np.zeros(capacity, dtype=np.int8)
        self._seq_values = np.arange(n_seq, dtype=np.int32)
        self._seq_ptrs = self._seq_values.ctypes.data + 4 * np.arange(n_seq, dtype=np.uintp)
        self.seq_id = np.zeros(capacity, dtype=np.uintp)  # pointers to one llama_seq_id each
        self.n = 0
        self.struct = ll.llama_batch(
            n_tokens=0,
            token=self.token.ctypes.data_as(ctypes.POINTER(ll.llama_token)),
            embd=None,
            pos=self.pos.ctypes.data_as(ctypes.POINTER(ll.llama_pos)),
            n_seq_id=self.n_seq_id.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
            seq_id=ctypes.cast(self.seq_id.ctypes.data, ctypes.POINTER(ctypes.POINTER(ll.llama_seq_id))),
            logits=self.logits.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)),
        )

    @property
    def free(self) -> int:
        return self.capacity - self.n

    def clear(self) -> None:
        self.n = 0

    def add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        """Add one token; returns its index in the batch."""
        i = self.n
        self.token[i] = token
        self.pos[i] = pos
        self.seq_id[i] = self._seq_ptrs[seq]
        self.logits[i] = logits
        self.n = i + 1
        return i

    def add_span(self, tokens: np.ndarray, pos0: int, seq: int, logits_last: bool, logits_all: bool = False) -> int:
        """Add consecutive tokens of one sequence; returns the index of the last one.

        logits_all marks every token as an output, as embedding contexts require."""
        i, k = self.n, len(tokens)
        j = i + k
        self.token[i:j] = tokens
        self.pos[i:j] = np.arange(pos0, pos0 + k, dtype=np.int32)
        self.seq_id[i:j] = self._seq_ptrs[seq]
        self.logits[i:j] = logits_all
        self.logits[j - 1] = logits_last or logits_all
        self.n = j
        return j - 1

    def decode(self, ctx) -> int:
        self.struct.n_tokens = self.n
        return ll.llama_decode(ctx, self.struct)
