"""Stand-ins for the model side of the protocol's pure translation: a tokenizer, a chat setup and the server's
chat side the families' chat_tasks ask for (no model).

Only for the request → task unit tests; behaviour tests elsewhere use the real model."""

from __future__ import annotations

from typing import Any, Callable

from llamaserve.chat.formats import detect_format
from llamaserve.config import SamplingDefaults
from llamaserve.errors import ServerError, Unavailable
from llamaserve.protocol import openai
from llamaserve.protocol.task_defaults import TaskDefaults

BOS = 1


class FakeTokenizer:
    """One token per character (its code point), BOS (1) first when special tokens are added."""

    n_vocab = 1000

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = True) -> list[int]:
        return ([BOS] if add_special else []) + [ord(c) for c in text]

    def detokenize(self, tokens: list[int], special: bool = False) -> str:
        return "".join(chr(t) for t in tokens if t != BOS or not special)


def render(messages: list[dict[str, Any]], add_generation_prompt: bool, tools, kwargs: dict[str, Any],
           continue_final: bool = False) -> str:
    """A plain template: "role: content" lines, then "assistant:" for a new turn."""
    text = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
    if continue_final:
        text = text[:-1]
    return text + ("assistant:" if add_generation_prompt else "")


def chat_setup(**changes: Any) -> openai.ChatSetup:
    fields: dict[str, Any] = dict(
        render=render, format=detect_format(""), caps=None, prefill_assistant=True, template_kwargs={},
        reasoning_format="auto", max_n=4, model_alias="alias",
    )
    return openai.ChatSetup(**{**fields, **changes})


def hermes_setup(**changes: Any) -> openai.ChatSetup:
    """A setup whose format is Hermes' (<tool_call> JSON), for tool requests."""
    return chat_setup(format=detect_format("{{ '<tool_call>' }}"), **changes)


def defaults(**changes: Any) -> TaskDefaults:
    return TaskDefaults(SamplingDefaults(), **changes)


TOKENIZER = FakeTokenizer()


def text_of(tokens: list[int]) -> str:
    """A prompt's text back from the fake tokens (BOS dropped)."""
    return "".join(chr(t) for t in tokens if t != BOS)


def chat_server(setup: openai.ChatSetup | None = None, **task_defaults: Any) -> Callable[[], openai.ChatServer]:
    """The server's chat side as EngineBridge.chat_server gives it to the families' chat_tasks."""
    return lambda: openai.ChatServer(setup or chat_setup(), TOKENIZER, defaults(**task_defaults))


def loading_server() -> openai.ChatServer:
    """The chat side while the model loads: EngineBridge.chat_server's 503."""
    raise Unavailable("Loading model")


def broken_template_server() -> openai.ChatServer:
    """The chat side of a model whose chat template cannot be used: the template's error (500)."""
    raise ServerError("the chat template cannot be used")
