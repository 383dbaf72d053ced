"""Shared checks for the output-parser tests: feed text in many splits, compare with the one-shot parse."""

from __future__ import annotations

import itertools
import json
import random

from llamaserve.chat.output import ChatMessage, OutputParser, ToolCall

# two described tools of the parser and rendering tests
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}}
PYTHON = {"type": "function", "function": {
    "name": "python", "description": "Run code",
    "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
}}


def ids():
    counter = itertools.count()
    return lambda: f"id{next(counter)}"


def run(fmt, chunks, tools=None, **kwargs):
    """Feed chunks; returns (all deltas, final message, problems)."""
    parser = OutputParser(fmt, tools, new_id=ids(), **kwargs)
    deltas = []
    for c in chunks:
        deltas += parser.feed(c)
    tail, message = parser.finish()
    return deltas + tail, message, parser.problems


def assemble(deltas) -> ChatMessage:
    """Rebuild a message from deltas, checking the streaming rules on the way."""
    msg = ChatMessage()
    for d in deltas:
        assert d, "empty delta"
        assert set(d) <= {"content", "reasoning_content", "tool_calls"}, d
        assert all(v for k, v in d.items() if k != "tool_calls"), f"empty text delta {d}"
        msg.content += d.get("content", "")
        msg.reasoning_content += d.get("reasoning_content", "")
        for tc in d.get("tool_calls", []):
            if "id" in tc:
                assert tc["index"] == len(msg.tool_calls), "calls are announced in order, once"
                assert tc["type"] == "function" and tc["function"]["arguments"] == ""
                msg.tool_calls.append(ToolCall(tc["id"], tc["function"]["name"]))
            else:
                assert set(tc) == {"index", "function"} and set(tc["function"]) == {"arguments"}, tc
                assert tc["index"] == len(msg.tool_calls) - 1, "arguments only for the call being written"
                assert tc["function"]["arguments"], "empty argument fragment"
                msg.tool_calls[tc["index"]].arguments += tc["function"]["arguments"]
    return msg


def splits(text: str, seed: int = 0, n_random: int = 25):
    """Ways to cut text into pieces: whole, every 2-way cut, char by char, and random partitions."""
    yield [text]
    for i in range(1, len(text)):
        yield [text[:i], text[i:]]
    yield list(text)
    rng = random.Random(seed)
    for _ in range(n_random):
        k = min(len(text) - 1, rng.randint(1, 12))
        cuts = sorted(rng.sample(range(1, len(text)), k)) if k > 0 else []
        bounds = [0, *cuts, len(text)]
        yield [text[a:b] for a, b in zip(bounds, bounds[1:])]


def check_streaming(fmt, text, tools=None, markers=(), **kwargs):
    """Every split gives the same message (and problems) as the one-shot parse, and its deltas assemble to it.

    Returns the one-shot (message, problems). No string of `markers` may appear in a content delta.
    """
    _, whole, problems = run(fmt, [text], tools, **kwargs)
    for chunks in splits(text, seed=len(text)):
        deltas, message, probs = run(fmt, chunks, tools, **kwargs)
        assert message == whole, chunks
        assert probs == problems, chunks
        assert assemble(deltas) == message, chunks
        for d in deltas:
            for m in markers:
                assert m not in d.get("content", ""), (m, chunks)
    return whole, problems


def calls(message: ChatMessage):
    return [(c.name, json.loads(c.arguments)) for c in message.tool_calls]
