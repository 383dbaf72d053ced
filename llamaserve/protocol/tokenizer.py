"""The loaded model's text ⇄ tokens, as the pure translation is handed it: the `Tokenizer` protocol (the
engine's Model has its shape; the unit tests pass a stand-in) and the plain `Tokenize` function form."""

from __future__ import annotations

from typing import Any, Callable, Protocol

Tokenize = Callable[[str, bool], list[int]]  # (text, add_special) -> tokens


class Tokenizer(Protocol):
    """Text ⇄ tokens of the loaded model (the engine's Model has this shape)."""

    n_vocab: int

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = True) -> list[int]: ...

    def detokenize(self, tokens: list[int], special: bool = False) -> str: ...

    def tokenize_media(self, text: str, media: list) -> Any:
        """Text with media markers and the media (bytes) they stand for, as a
        prompt whose `tokens`, `spans` and `owner` the tasks carry; MediaUnsupported without a projector."""
        ...
