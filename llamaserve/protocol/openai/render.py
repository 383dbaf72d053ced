"""OpenAI chat completions and completions responses: engine Results → response JSON and stream chunks,
and the output parsers that turn a choice's generated text into a message."""

from __future__ import annotations

import dataclasses
import math
import secrets
import string
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal

from llamaserve.chat.output import OutputParser
from llamaserve.engine.types import Result, TokenProb
from llamaserve.protocol import native

if TYPE_CHECKING:
    from llamaserve.protocol.openai.plan import Plan

_ID_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(32))


def finish_reason(r: Result, message: dict[str, Any] | None = None) -> str:
    if r.stop_type == "limit":
        return "length"
    return "tool_calls" if message and message.get("tool_calls") else "stop"


class PlainOutput:
    """Generated text taken as plain assistant content.

    The interface every chat output parser has: feed() turns a text delta into
    OpenAI-shaped message deltas; finish() returns the last deltas and the whole
    message ({"content", "reasoning_content", "tool_calls"}).
    """

    def __init__(self) -> None:
        self.parts: list[str] = []

    def feed(self, text: str) -> list[dict[str, Any]]:
        self.parts.append(text)
        return [{"content": text}]

    def finish(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return [], {"content": "".join(self.parts), "reasoning_content": "", "tool_calls": []}


class ParsedOutput:
    """A chat output parser (chat/output.py) behind PlainOutput's interface, with the message as a dict."""

    def __init__(self, parser: OutputParser, report: Callable[[str], None]):
        self.parser = parser
        self.report = report

    def feed(self, text: str) -> list[dict[str, Any]]:
        return self.parser.feed(text)

    def finish(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        deltas, msg = self.parser.finish()
        for problem in self.parser.problems:
            self.report(problem)
        return deltas, {
            "content": msg.content, "reasoning_content": msg.reasoning_content,
            "tool_calls": [c.to_openai() for c in msg.tool_calls], "problems": list(self.parser.problems),
        }


def parse_message(plan: "Plan", text: str) -> dict[str, Any]:
    output = plan.output()
    output.feed(text)
    return output.finish()[1]


# --- responses ---

def usage_json(finals: list[Result], n: int) -> dict[str, Any]:
    # Every choice of a prompt shares that prompt: count it once.
    firsts = finals[::n]
    prompt = sum(r.n_prompt for r in firsts)
    completion = sum(r.n_decoded for r in finals)
    return {
        "completion_tokens": completion,
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": sum(r.timings.cache_n for r in firsts if r.timings)},
    }


def _text(piece: bytes) -> str:
    return piece.decode("utf-8", "ignore")


def _logprob(x: float) -> float:
    return x if math.isfinite(x) else -9999.0


def chat_logprobs(probs: list[TokenProb], top_n: int) -> dict[str, Any]:
    return {
        "content": [
            {
                "id": p.id,
                "token": _text(p.piece),
                "bytes": list(p.piece),
                "logprob": _logprob(p.value),
                "top_logprobs": [
                    {"id": i, "token": _text(b), "bytes": list(b), "logprob": _logprob(v)} for i, b, v in p.top[:top_n]
                ],
            }
            for p in probs
        ],
        "refusal": None,
    }


def completion_logprobs(probs: list[TokenProb], top_n: int, offset: int) -> dict[str, Any]:
    """The legacy completions shape: parallel arrays plus one {token: logprob} map per position."""
    tokens, values, tops, offsets = [], [], [], []
    for p in probs:
        text = _text(p.piece)
        tokens.append(text)
        values.append(_logprob(p.value))
        tops.append({_text(b): _logprob(v) for _, b, v in p.top[:top_n]})
        offsets.append(offset)
        offset += len(text)
    return {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}


@dataclass
class Envelope:
    """What every response object and chunk of one request repeats."""

    id: str
    model: str
    fingerprint: str
    created: int = dataclasses.field(default_factory=lambda: int(time.time()))

    def wrap(self, obj: Literal["chat.completion", "chat.completion.chunk", "text_completion"], choices: list, **extra) -> dict[str, Any]:
        return {
            "id": self.id, "object": obj, "created": self.created, "model": self.model,
            "system_fingerprint": self.fingerprint, "choices": choices, **extra,
        }


def verbose_json(plan: Plan, r: Result, prompt_text: str) -> dict[str, Any]:
    """llama-server's "__verbose": the native /completion response of the same result. A streamed
    result's text already went out in the chunks before, so (as there) its final holds none."""
    if r.task.stream:
        r = dataclasses.replace(r, text="", tokens=[], probs=[])
    return native.final_json(r, plan.model, prompt_text, plan.native.return_tokens, plan.native.response_fields)


def _prompt_text(prompt_texts: list[str], r: Result, n: int) -> str:
    return prompt_texts[r.task.index // n] if prompt_texts else ""


def chat_response(env: Envelope, finals: list[Result], plan: Plan) -> dict[str, Any]:
    choices = []
    for r in finals:
        msg = parse_message(plan, r.text)
        message: dict[str, Any] = {"role": "assistant", "content": msg["content"] or None if msg["tool_calls"] else msg["content"]}
        if msg["reasoning_content"]:
            message["reasoning_content"] = msg["reasoning_content"]
        if msg["tool_calls"]:
            message["tool_calls"] = msg["tool_calls"]
        message["refusal"] = None
        choices.append({
            "index": r.task.index,
            "message": message,
            "logprobs": chat_logprobs(r.probs, plan.logprobs) if plan.logprobs is not None else None,
            "finish_reason": finish_reason(r, msg),
        })
    extra = {"__verbose": verbose_json(plan, finals[0], plan.prompt_text)} if plan.verbose else {}
    return env.wrap("chat.completion", choices, usage=usage_json(finals, plan.n), **extra, timings=_timings(finals))


def completions_response(env: Envelope, finals: list[Result], plan: Plan, prompt_texts: list[str]) -> dict[str, Any]:
    choices = []
    for r in finals:
        head = prompt_texts[r.task.index // plan.n] if plan.echo else ""
        choices.append({
            "index": r.task.index,
            "text": head + r.text,
            "logprobs": completion_logprobs(r.probs, plan.logprobs, len(head)) if plan.logprobs is not None else None,
            "finish_reason": finish_reason(r),
        })
    extra = {"__verbose": verbose_json(plan, finals[0], _prompt_text(prompt_texts, finals[0], plan.n))} if plan.verbose else {}
    return env.wrap("text_completion", choices, usage=usage_json(finals, plan.n), **extra, timings=_timings(finals))


def _timings(finals: list[Result]) -> dict[str, Any]:
    r = finals[0]
    return r.timings.as_dict() if r.timings else {}


class ChatChunks:
    """Builds the chunks of one streamed chat completion (all choices share the envelope)."""

    def __init__(self, env: Envelope, plan: Plan):
        self.env = env
        self.plan = plan
        self.outputs: dict[int, Any] = {}

    def _chunk(self, index: int, delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> dict[str, Any]:
        return self.env.wrap(
            "chat.completion.chunk",
            [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
        )

    def chunks(self, r: Result) -> list[dict[str, Any]]:
        """The chunks one engine Result turns into: role first, then deltas, then the finish."""
        index = r.task.index
        out = []
        output = self.outputs.get(index)
        if r.progress is not None:  # llama-server's way: the role delta again, with the prompt's progress
            if output is None:
                self.outputs[index] = self.plan.output()
            chunk = self._chunk(index, {"role": "assistant", "content": None})
            chunk["prompt_progress"] = r.progress.as_dict()
            if r.timings is not None:
                chunk["timings"] = r.timings.as_dict()
            return [chunk]
        if output is None:
            output = self.outputs[index] = self.plan.output()
            out.append(self._chunk(index, {"role": "assistant", "content": None}))
        first = len(out)  # the chunks of this result, after the role chunk
        deltas = output.feed(r.text) if r.text else []
        message = None
        if r.done:
            tail, message = output.finish()
            deltas += tail
        if self.plan.logprobs is not None and r.probs:
            logprobs = chat_logprobs(r.probs, self.plan.logprobs)
            if deltas:
                out += [self._chunk(index, d) for d in deltas[:-1]]
                out.append(self._chunk(index, deltas[-1], logprobs=logprobs))
            else:
                out.append(self._chunk(index, {}, logprobs=logprobs))
        else:
            out += [self._chunk(index, d) for d in deltas]
        if message is not None:
            finish = self._chunk(index, {}, finish_reason(r, message))
            if r.timings is not None:
                finish["timings"] = r.timings.as_dict()
            out.append(finish)
            if self.plan.verbose:  # as llama-server: on the first chunk of the final result only
                out[first]["__verbose"] = verbose_json(self.plan, r, self.plan.prompt_text)
        return out

    def usage(self, finals: list[Result]) -> dict[str, Any]:
        return self.env.wrap("chat.completion.chunk", [], usage=usage_json(finals, self.plan.n), timings=_timings(finals))


class CompletionChunks:
    """Builds the chunks of one streamed text completion."""

    def __init__(self, env: Envelope, plan: Plan, prompt_texts: list[str]):
        self.env = env
        self.plan = plan
        self.prompt_texts = prompt_texts
        self.offsets: dict[int, int] = {}

    def text(self, r: Result, finish: str | None = None) -> dict[str, Any]:
        index = r.task.index
        head = ""
        if index not in self.offsets:
            head = self.prompt_texts[index // self.plan.n] if self.plan.echo else ""
            self.offsets[index] = 0
        logprobs = None
        if self.plan.logprobs is not None:
            logprobs = completion_logprobs(r.probs, self.plan.logprobs, self.offsets[index] + len(head))
        self.offsets[index] += len(head) + len(r.text)
        chunk = self.env.wrap(
            "text_completion", [{"index": index, "text": head + r.text, "logprobs": logprobs, "finish_reason": finish}]
        )
        if r.timings is not None:  # the final's, or every chunk's with timings_per_token
            chunk["timings"] = r.timings.as_dict()
        if r.progress is not None:
            chunk["prompt_progress"] = r.progress.as_dict()
        if self.plan.verbose:  # as llama-server: every chunk, the native partial or final response
            chunk["__verbose"] = verbose_json(self.plan, r, _prompt_text(self.prompt_texts, r, self.plan.n)) \
                if finish is not None else native.partial_json(r, True)
        return chunk

    def usage(self, finals: list[Result]) -> dict[str, Any]:
        return self.env.wrap("text_completion", [], usage=usage_json(finals, self.plan.n))
