"""N-gram drafts: the tokens that followed an earlier occurrence of what the slot just produced.

Pure functions over token arrays (numpy, no libllama): `ngram_simple` searches the slot's own history,
`NgramMod` keeps one table of "n tokens -> the token that came next" for the whole server, as
llama-server's ngram-simple and ngram-mod types do.
"""

from __future__ import annotations

import numpy as np


def ngram_simple(history: np.ndarray, size_n: int, size_m: int) -> list[int]:
    """The draft after the latest earlier occurrence of the last `size_n` tokens of `history` (the
    slot's tokens, the one just sampled last): up to `size_m` tokens, none when fewer than `size_n`
    follow it (a short continuation predicts badly) or when the history is too short to hold the
    n-gram twice with a draft between (llama-server's rule)."""
    n, m = size_n, size_m
    cur = len(history) - 1  # tokens before the one just sampled
    if n <= 0 or m <= 0 or cur <= n + m + 1:
        return []
    pattern = history[cur - n + 1:]
    # candidate starts j in 1 .. cur - n - 1 (0 is llama-server's "no match"), latest first; the
    # first token filters them in C before the few left are compared whole
    starts = np.flatnonzero(history[1:cur - n] == pattern[0]) + 1
    for j in starts[::-1]:
        if np.array_equal(history[j:j + n], pattern):
            count = min(m, cur - (j + n))
            if count < n:
                return []
            return history[j + n:j + n + count].tolist()
    return []


class NgramMod:
    """ngram-mod: every n-gram seen (in prompts and outputs of any slot) maps to the token that came
    after it, the latest one winning; a draft chains lookups from the slot's last n tokens.

    One table for the server, as llama-server's: what one conversation repeated helps the next. It is
    emptied when it outgrows `max_entries`, and by `low_acceptance` when its drafts keep failing."""

    def __init__(self, n_match: int, n_min: int, n_max: int, max_entries: int = 1 << 20):
        self.n = max(1, n_match)
        self.n_min = n_min
        self.n_max = n_max
        self.max_entries = max_entries
        self.table: dict[bytes, int] = {}
        self.added: dict[int, int] = {}  # per sequence: history positions already in the table

    def reset(self) -> None:
        self.table.clear()
        self.added.clear()

    def add(self, seq: int, history: np.ndarray, start: int | None = None) -> None:
        """Enter the n-grams of history[start or where seq left off:] (each with the token after it)."""
        n = self.n
        begin = self.added.get(seq, 0) if start is None else start
        end = len(history) - n  # the last n-gram with a token after it starts at len - n - 1
        if end <= begin:
            return
        if len(self.table) + (end - begin) > self.max_entries:
            self.reset()
            begin = 0
        data = np.ascontiguousarray(history, dtype=np.int32)
        raw = data.tobytes()
        table = self.table
        for i in range(begin, end):
            table[raw[4 * i:4 * (i + n)]] = int(data[i + n])
        self.added[seq] = end

    def draft(self, seq: int, history: np.ndarray) -> list[int]:
        """A draft for the sequence whose tokens (the last one just sampled) are `history`."""
        n = self.n
        if len(history) < n:
            return []
        # n-grams are entered in chunks, not at every token (a step adds one or a few)
        if self.added.get(seq, 0) + 32 < len(history):
            self.add(seq, history)
        window = [int(t) for t in history[len(history) - n:]]
        out: list[int] = []
        get = self.table.get
        for _ in range(self.n_max):
            token = get(np.asarray(window[-n:], dtype=np.int32).tobytes())
            if token is None:
                break
            out.append(token)
            window.append(token)
        return out if len(out) >= max(1, self.n_min) else []

    def forget(self, seq: int) -> None:
        """The sequence starts over (a new task): its history is entered again from its start."""
        self.added.pop(seq, None)
