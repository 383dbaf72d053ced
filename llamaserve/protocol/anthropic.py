"""Anthropic's Messages API: request → engine tasks (`chat_tasks`), Results → message JSON and stream events.

Pure translation. A Messages request is rewritten as a chat completions request
(one conversion path, as llama-server does), so templates, sampling and tool
handling stay in one place.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr

from llamaserve.engine.types import Result, Task
from llamaserve.errors import InvalidRequest, MediaUnsupported
from llamaserve.protocol import openai
from llamaserve.protocol.native import Number
from llamaserve.protocol.openai import new_id, validate_model

class MessagesRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: StrictStr | None = None
    max_tokens: StrictInt
    messages: list[dict[str, Any]]
    system: StrictStr | list[dict[str, Any]] | None = None
    stop_sequences: list[StrictStr] | None = None
    temperature: Number | None = None
    top_p: Number | None = None
    top_k: StrictInt | None = None
    stream: StrictBool = False
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None


class CountTokensRequest(MessagesRequest):
    max_tokens: StrictInt | None = None  # type: ignore[assignment]


# Keys rewritten into the chat request; everything else passes through as native llama.cpp fields.
_CONSUMED = {
    "model", "max_tokens", "messages", "system", "stop_sequences", "tools", "tool_choice", "thinking", "metadata",
    "output_config", "cache_control", "service_tier", "container", "inference_geo", "speed",
}


def chat_tasks(body: Any, server: Callable[[], openai.ChatServer],
               count_only: bool = False) -> tuple[openai.Plan, list[Task]]:
    """A Messages body (count_only: a count_tokens one, which needs no max_tokens) as the plan and engine
    tasks of the chat request it is rewritten as. `server` is called once the Anthropic checks have passed
    (see openai.ChatServer)."""
    chat = to_chat_request(body, count_only)
    s = server()
    # /v1/messages renders an empty conversation (the template's opening alone), as llama-server's Anthropic
    # route does; count_tokens keeps the chat path's rule and refuses one
    return openai.chat_tasks(chat, s.setup, s.tokenizer, s.defaults, allow_empty=not count_only)


def to_chat_request(body: Any, count_only: bool = False) -> dict[str, Any]:
    req: MessagesRequest = validate_model(CountTokensRequest if count_only else MessagesRequest, body)
    if req.max_tokens is not None and req.max_tokens < 1:
        raise InvalidRequest('"max_tokens" must be at least 1')
    messages: list[dict[str, Any]] = []
    if req.system:
        messages.append({"role": "system", "content": _text_of(req.system, "system")})
    for i, msg in enumerate(req.messages):
        messages += _convert_message(msg, i)
    chat: dict[str, Any] = {k: v for k, v in body.items() if k not in _CONSUMED}
    chat["messages"] = messages
    if req.model is not None:
        chat["model"] = req.model
    if req.max_tokens is not None:
        chat["max_tokens"] = req.max_tokens
    if req.stop_sequences:
        chat["stop"] = req.stop_sequences
    if req.tools:
        chat["tools"] = [_convert_tool(t, i) for i, t in enumerate(req.tools)]
    if req.tool_choice is not None:
        chat["tool_choice"] = _convert_tool_choice(req.tool_choice)
    if req.thinking is not None:
        _convert_thinking(req.thinking, chat)
    if req.output_config:
        _convert_output_config(req.output_config, chat)
    return chat


def _convert_thinking(thinking: dict[str, Any], chat: dict[str, Any]) -> None:
    kind = thinking.get("type")
    kwargs = chat.setdefault("chat_template_kwargs", {})
    if kind in ("enabled", "between_tools"):
        kwargs["enable_thinking"] = True
        budget = thinking.get("budget_tokens")
        if budget is not None:
            chat["reasoning_budget_tokens"] = budget
    elif kind == "disabled":
        kwargs["enable_thinking"] = False
    elif kind != "adaptive":  # adaptive: the template's own default decides
        raise InvalidRequest('"thinking.type" must be "enabled", "disabled", "adaptive" or "between_tools"')


def _convert_output_config(config: dict[str, Any], chat: dict[str, Any]) -> None:
    fmt = config.get("format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
            raise InvalidRequest('"output_config.format" must be {"type": "json_schema", "schema": {...}}')
        chat["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt["schema"]}}
    effort = config.get("effort")
    if effort is not None:
        # a hint some templates understand (as OpenAI's reasoning_effort in llama-server)
        chat.setdefault("chat_template_kwargs", {})["reasoning_effort"] = effort


def image_url(block: dict[str, Any], where: str) -> str:
    """An image block's source as a URL the chat plan reads: base64 data as a data: URI, or its url."""
    src = block.get("source")
    if not isinstance(src, dict):
        raise InvalidRequest(f'{where}: an image block needs a "source"')
    if src.get("type") == "base64":
        media_type, data = src.get("media_type", "image/png"), src.get("data")
        if not isinstance(data, str) or not isinstance(media_type, str):
            raise InvalidRequest(f'{where}: a base64 image source needs "media_type" and "data" strings')
        return f"data:{media_type};base64,{data}"
    if src.get("type") == "url" and isinstance(src.get("url"), str):
        return src["url"]
    raise InvalidRequest(f'{where}: the image source "type" must be "base64" or "url"')


def _text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "image":  # e.g. a tool result that shows an image
            raise MediaUnsupported(where)
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise InvalidRequest(f"{where}: only text blocks are allowed here")
        texts.append(block["text"])
    return "\n".join(texts)


def _convert_message(msg: dict[str, Any], i: int) -> list[dict[str, Any]]:
    role = msg.get("role")
    if role not in ("user", "assistant"):
        raise InvalidRequest(f'messages[{i}]: "role" must be "user" or "assistant"')
    content = msg.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise InvalidRequest(f'messages[{i}]: "content" must be a string or an array of content blocks')
    texts: list[str] = []
    parts: list[dict[str, Any]] = []  # the text and the images in order, as OpenAI content parts
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
            parts.append({"type": "text", "text": texts[-1]})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": image_url(block, f"messages[{i}]")}})
        elif kind == "tool_use" and role == "assistant":
            calls.append({
                "id": block.get("id") or new_id("toolu_"), "type": "function",
                "function": {"name": block.get("name", ""), "arguments": json.dumps(block.get("input", {}))},
            })
        elif kind == "tool_result" and role == "user":
            results.append({
                "role": "tool", "tool_call_id": block.get("tool_use_id", ""),
                "content": _text_of(block.get("content", ""), f"messages[{i}].tool_result"),
            })
        elif kind in ("thinking", "redacted_thinking") and role == "assistant":
            thinking.append(str(block.get("thinking", "")))
        else:
            raise InvalidRequest(f"messages[{i}]: unsupported content block type {kind!r} in a {role} message")
    out: list[dict[str, Any]] = list(results)
    if texts or calls or parts or not results:
        # (images go on as parts: the chat plan takes them where a projector is loaded, else refuses them)
        m: dict[str, Any] = {"role": role, "content": parts if len(parts) > len(texts) else "\n".join(texts)}
        if calls:
            m["tool_calls"] = calls
        if thinking:
            m["reasoning_content"] = "\n".join(thinking)
        out.append(m)
    return out


def _convert_tool(tool: dict[str, Any], i: int) -> dict[str, Any]:
    if not isinstance(tool.get("name"), str):
        raise InvalidRequest(f'tools[{i}]: "name" is required')
    return {"type": "function", "function": {
        "name": tool["name"], "description": tool.get("description", ""),
        "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
    }}


def _convert_tool_choice(choice: dict[str, Any]) -> Any:
    kind = choice.get("type")
    if kind == "auto":
        return "auto"
    if kind == "any":
        return "required"
    if kind == "none":
        return "none"
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest('"tool_choice.type" must be "auto", "any", "none" or "tool" (with "name")')


# --- responses ---

def stop_reason(r: Result, message: dict[str, Any]) -> str:
    if r.stop_type == "limit":
        return "max_tokens"
    if message.get("tool_calls"):
        return "tool_use"
    if r.stop_type == "word":
        return "stop_sequence"
    return "end_turn"


def usage_json(r: Result) -> dict[str, Any]:
    cached = r.timings.cache_n if r.timings else 0
    return {"input_tokens": r.n_prompt - cached, "output_tokens": r.n_decoded, "cache_read_input_tokens": cached,
            "cache_creation_input_tokens": 0}


def _tool_input(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return {}


def message_json(msg_id: str, model: str, r: Result, message: dict[str, Any]) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = []
    if message.get("reasoning_content"):
        blocks.append({"type": "thinking", "thinking": message["reasoning_content"], "signature": ""})
    if message.get("content") or not message.get("tool_calls"):
        blocks.append({"type": "text", "text": message.get("content") or ""})
    for call in message.get("tool_calls") or []:
        fn = call["function"]
        blocks.append({"type": "tool_use", "id": call["id"], "name": fn["name"], "input": _tool_input(fn["arguments"])})
    return {
        "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": blocks,
        "stop_reason": stop_reason(r, message),
        "stop_sequence": r.stopping_word if r.stop_type == "word" else None,
        "usage": usage_json(r),
    }


class MessageEvents:
    """The event sequence of one streamed message, fed with OpenAI-shaped message deltas."""

    def __init__(self, msg_id: str, model: str, n_input: int):
        self.msg_id = msg_id
        self.model = model
        self.n_input = n_input
        self.block = -1  # index of the open content block
        self.kind = ""  # its kind: thinking | text | tool_use
        self.tool_index = -1

    def start(self) -> list[tuple[str, dict[str, Any]]]:
        message = {
            "id": self.msg_id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self.n_input, "output_tokens": 0},
        }
        return [("message_start", {"type": "message_start", "message": message}), ("ping", {"type": "ping"})]

    def _open(self, kind: str, block: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        events = self._close()
        self.block += 1
        self.kind = kind
        events.append(("content_block_start", {"type": "content_block_start", "index": self.block, "content_block": block}))
        return events

    def _close(self) -> list[tuple[str, dict[str, Any]]]:
        if not self.kind:
            return []
        self.kind = ""
        return [("content_block_stop", {"type": "content_block_stop", "index": self.block})]

    def _delta(self, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return ("content_block_delta", {"type": "content_block_delta", "index": self.block, "delta": delta})

    def deltas(self, deltas: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        events: list[tuple[str, dict[str, Any]]] = []
        for d in deltas:
            if d.get("reasoning_content"):
                if self.kind != "thinking":
                    events += self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
                events.append(self._delta({"type": "thinking_delta", "thinking": d["reasoning_content"]}))
            if d.get("content"):
                if self.kind != "text":
                    events += self._open("text", {"type": "text", "text": ""})
                events.append(self._delta({"type": "text_delta", "text": d["content"]}))
            for call in d.get("tool_calls") or []:
                fn = call.get("function") or {}
                if call.get("index", self.tool_index) != self.tool_index or self.kind != "tool_use":
                    self.tool_index = call.get("index", self.tool_index + 1)
                    events += self._open("tool_use", {"type": "tool_use", "id": call.get("id", ""), "name": fn.get("name", ""), "input": {}})
                if fn.get("arguments"):
                    events.append(self._delta({"type": "input_json_delta", "partial_json": fn["arguments"]}))
        return events

    def finish(self, r: Result, message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        events = []
        if self.block < 0:  # nothing generated: still one (empty) text block, as Anthropic sends
            events += self._open("text", {"type": "text", "text": ""})
        events += self._close()
        events.append(("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(r, message), "stop_sequence": r.stopping_word if r.stop_type == "word" else None},
            "usage": usage_json(r),
        }))
        events.append(("message_stop", {"type": "message_stop"}))
        return events
