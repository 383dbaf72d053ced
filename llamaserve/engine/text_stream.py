"""Incremental detokenization and stop-string matching for one generation.

Pure: takes the byte pieces of sampled tokens, gives the text that may be sent
now. Text is held back while it ends in an incomplete UTF-8 sequence or in a
prefix of a stop string, so neither broken characters nor any part of a stop
string ever reach a client.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field


def partial_stop_len(text: str, stops: list[str]) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of a stop string."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:n]):
                best = n
                break
    return best


def find_stop(text: str, stops: list[str], start: int) -> tuple[int, str] | None:
    """Earliest full stop string in text[start':] (start' backs up so a stop may straddle `start`)."""
    found: tuple[int, str] | None = None
    for stop in stops:
        pos = text.find(stop, max(0, start - len(stop) + 1))
        if pos != -1 and (found is None or pos < found[0]):
            found = (pos, stop)
    return found


@dataclass
class TextStream:
    stops: list[str] = field(default_factory=list)
    text: str = ""  # everything decoded so far (stop string excluded once found)
    sent: int = 0  # chars of `text` already handed out
    stopping_word: str = ""
    _decoder: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))

    @property
    def mid_character(self) -> bool:
        """The bytes so far end inside a UTF-8 sequence (the next token should complete it)."""
        return self._decoder.getstate()[0] != b""

    def push(self, piece: bytes) -> str:
        """Add one token's bytes; returns the text now safe to send (may be empty)."""
        checked_from = len(self.text)
        self.text += self._decoder.decode(piece)
        if self.stops:
            hit = find_stop(self.text, self.stops, checked_from)
            if hit is not None:
                pos, word = hit
                self.text = self.text[:pos]
                self.stopping_word = word
                return self._take(len(self.text))
            return self._take(len(self.text) - partial_stop_len(self.text, self.stops))
        return self._take(len(self.text))

    def finish(self) -> str:
        """End of generation: flush what was held back (a partial stop prefix is real text then)."""
        if not self.stopping_word:
            self.text += self._decoder.decode(b"", final=True)
        return self._take(len(self.text))

    @property
    def stopped(self) -> bool:
        return bool(self.stopping_word)

    def _take(self, upto: int) -> str:
        if upto <= self.sent:
            return ""
        out = self.text[self.sent : upto]
        self.sent = upto
        return out
