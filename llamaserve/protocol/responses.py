"""OpenAI's Responses API, stateless: request → engine tasks, Results → response object and stream events.

Pure translation, like protocol/anthropic.py: the request becomes a chat
completions body; the generated message becomes `output` items. Every stream
event carries a strictly increasing `sequence_number` (llama-server leaves it
out, which breaks Codex-style clients).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr

from llamaserve.engine.types import Result, Task
from llamaserve.errors import InvalidRequest
from llamaserve.protocol import openai
from llamaserve.protocol.native import Number
from llamaserve.protocol.openai import new_id, validate_model


class ResponsesRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: StrictStr | None = None
    input: StrictStr | list[dict[str, Any]]
    instructions: StrictStr | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    max_output_tokens: StrictInt | None = None
    temperature: Number | None = None
    top_p: Number | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    stream: StrictBool = False
    previous_response_id: StrictStr | None = None
    parallel_tool_calls: StrictBool | None = None
    metadata: dict[str, Any] | None = None
    store: StrictBool | None = None
    user: StrictStr | None = None
    background: StrictBool | None = None


class InputTokensRequest(ResponsesRequest):
    input: StrictStr | list[dict[str, Any]] = ""  # type: ignore[assignment]


# Rewritten into the chat body, or only echoed back in the response object.
_CONSUMED = {
    "model", "input", "instructions", "tools", "tool_choice", "max_output_tokens", "text", "reasoning",
    "previous_response_id", "metadata", "store", "user", "include", "truncation", "parallel_tool_calls",
    "service_tier", "prompt_cache_key", "safety_identifier", "background",
}


def chat_tasks(body: Any, server: Callable[[], openai.ChatServer],
               count_only: bool = False) -> tuple[ResponsesRequest, openai.Plan, list[Task]]:
    """A Responses body (count_only: an input_tokens one, which needs no input) as the request (the response
    object echoes it), and the plan and engine tasks of the chat request it is rewritten as. `server` is
    called once the Responses checks have passed (see openai.ChatServer)."""
    req, chat = to_chat_request(body, count_only)
    s = server()
    plan, tasks = openai.chat_tasks(chat, s.setup, s.tokenizer, s.defaults)
    return req, plan, tasks


def to_chat_request(body: Any, count_only: bool = False) -> tuple[ResponsesRequest, dict[str, Any]]:
    req: ResponsesRequest = validate_model(InputTokensRequest if count_only else ResponsesRequest, body)
    if req.previous_response_id:
        raise InvalidRequest('"previous_response_id" is not supported: this server is stateless; send the whole conversation in "input"')
    if req.background:
        raise InvalidRequest('"background" responses are not supported')
    messages: list[dict[str, Any]] = []
    if req.instructions:
        messages.append({"role": "system", "content": req.instructions})
    messages += _convert_input(req.input)
    chat: dict[str, Any] = {k: v for k, v in body.items() if k not in _CONSUMED}
    chat["messages"] = messages
    if req.model is not None:
        chat["model"] = req.model
    if req.max_output_tokens is not None:
        chat["max_tokens"] = req.max_output_tokens
    if req.tools:
        chat["tools"] = [_convert_tool(t, i) for i, t in enumerate(req.tools)]
    if req.tool_choice is not None:
        chat["tool_choice"] = _convert_tool_choice(req.tool_choice)
    if req.parallel_tool_calls is not None:
        chat["parallel_tool_calls"] = req.parallel_tool_calls
    fmt = (req.text or {}).get("format")
    if fmt is not None:
        chat["response_format"] = _convert_format(fmt)
    effort = (req.reasoning or {}).get("effort")
    if effort is not None:
        # OpenAI's reasoning_effort, as llama-server maps it: "none" turns thinking off (and drops the
        # server's --reasoning-effort), other levels reach the template
        chat["reasoning_effort"] = effort
    return req, chat


def _convert_input(items: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    out: list[dict[str, Any]] = []
    reasoning = ""
    for i, item in enumerate(items):
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise InvalidRequest(f'input[{i}]: "role" must be user, assistant, system or developer')
            msg: dict[str, Any] = {"role": role, "content": _content(item.get("content", ""), i)}
            if role == "assistant" and reasoning:
                msg["reasoning_content"], reasoning = reasoning, ""
            out.append(msg)
        elif kind == "function_call":
            call = {"id": item.get("call_id") or item.get("id") or new_id("call_"), "type": "function",
                    "function": {"name": item.get("name", ""), "arguments": item.get("arguments", "{}")}}
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                msg = {"role": "assistant", "content": "", "tool_calls": [call]}
                if reasoning:
                    msg["reasoning_content"], reasoning = reasoning, ""
                out.append(msg)
        elif kind == "function_call_output":
            output = item.get("output", "")
            out.append({"role": "tool", "tool_call_id": item.get("call_id", ""),
                        "content": output if isinstance(output, str) else _content_text(output, i)})
        elif kind == "reasoning":
            # the model's own earlier reasoning: kept with the assistant turn that follows it
            parts = item.get("content") or item.get("summary") or []
            reasoning += "".join(p.get("text", "") for p in parts if isinstance(p, dict))
        else:
            raise InvalidRequest(f"input[{i}]: unsupported input item type {kind!r}")
    return out


def _content(content: Any, i: int) -> str | list[dict[str, Any]]:
    """A message's content: its text, or with images (input_image) the text and images in order as
    OpenAI content parts, which the chat plan takes where a projector is loaded."""
    if not isinstance(content, list) or not any(isinstance(p, dict) and p.get("type") == "input_image" for p in content):
        return _content_text(content, i)
    parts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str):
                raise InvalidRequest(f'input[{i}]: an input_image needs an "image_url" (file_id is not supported)')
            parts.append({"type": "image_url", "image_url": {"url": url}})
        else:
            parts.append({"type": "text", "text": _content_text([part], i)})
    return parts


def _content_text(content: Any, i: int) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f'input[{i}]: "content" must be a string or an array of parts')
    texts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            texts.append(str(part.get("text", "")))
        elif kind in ("input_image", "input_file", "input_audio"):
            raise InvalidRequest(f"input[{i}]: {kind} is not supported: this server runs a text-only model")
        else:
            raise InvalidRequest(f"input[{i}]: unsupported content part type {kind!r}")
    return "\n".join(texts)


def _convert_tool(tool: dict[str, Any], i: int) -> dict[str, Any]:
    if tool.get("type") != "function":
        raise InvalidRequest(f'tools[{i}]: only "function" tools are supported, got {tool.get("type")!r}')
    if not isinstance(tool.get("name"), str):
        raise InvalidRequest(f'tools[{i}]: "name" is required')
    fn = {"name": tool["name"], "description": tool.get("description") or "",
          "parameters": tool.get("parameters") or {"type": "object", "properties": {}}}
    if tool.get("strict") is not None:
        fn["strict"] = tool["strict"]
    return {"type": "function", "function": fn}


def _convert_tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest('"tool_choice" must be "auto", "none", "required" or {"type": "function", "name": ...}')


def _convert_format(fmt: Any) -> dict[str, Any]:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return {"type": "text"}
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        if not isinstance(fmt.get("schema"), dict):
            raise InvalidRequest('"text.format.schema" is required for type "json_schema"')
        return {"type": "json_schema", "json_schema": {"name": fmt.get("name", "output"), "schema": fmt["schema"],
                                                       "strict": fmt.get("strict")}}
    raise InvalidRequest('"text.format.type" must be "text", "json_object" or "json_schema"')


# --- responses ---

class ResponseBuilder:
    """Output items and the response object of one request; ids stay the same across stream events."""

    def __init__(self, req: ResponsesRequest, model: str):
        self.req = req
        self.model = model
        self.id = new_id("resp_")
        self.created_at = int(time.time())
        self.items: list[dict[str, Any]] = []

    def response(self, status: str, r: Result | None = None) -> dict[str, Any]:
        req = self.req
        res: dict[str, Any] = {
            "id": self.id, "object": "response", "created_at": self.created_at, "status": status,
            "error": None, "incomplete_details": None, "instructions": req.instructions,
            "max_output_tokens": req.max_output_tokens, "model": self.model, "output": self.items,
            "parallel_tool_calls": req.parallel_tool_calls if req.parallel_tool_calls is not None else True,
            "previous_response_id": None, "reasoning": {"effort": (req.reasoning or {}).get("effort"), "summary": None},
            "store": False, "temperature": req.temperature, "text": req.text or {"format": {"type": "text"}},
            "tool_choice": req.tool_choice if req.tool_choice is not None else "auto", "tools": req.tools or [],
            "top_p": req.top_p, "truncation": "disabled", "usage": None, "user": req.user, "metadata": req.metadata or {},
        }
        if r is not None:
            if r.stop_type == "limit":
                res["status"] = "incomplete"
                res["incomplete_details"] = {"reason": "max_output_tokens"}
            cached = r.timings.cache_n if r.timings else 0
            res["usage"] = {
                "input_tokens": r.n_prompt, "input_tokens_details": {"cached_tokens": cached},
                "output_tokens": r.n_decoded, "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": r.n_prompt + r.n_decoded,
            }
            res["output_text"] = "".join(
                part["text"] for item in self.items if item["type"] == "message" for part in item["content"]
            )
            if r.timings is not None:
                res["timings"] = r.timings.as_dict()
        return res

    def complete(self, r: Result, message: dict[str, Any]) -> dict[str, Any]:
        """The whole response of a non-streamed request."""
        if message.get("reasoning_content"):
            self.items.append(_reasoning_item(new_id("rs_"), message["reasoning_content"]))
        if message.get("content") or not message.get("tool_calls"):
            self.items.append(_message_item(new_id("msg_"), message.get("content") or "", "completed"))
        for call in message.get("tool_calls") or []:
            self.items.append(_call_item(new_id("fc_"), call["id"], call["function"]["name"], call["function"]["arguments"], "completed"))
        return self.response("completed", r)


def _message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if status == "completed" else []
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def _reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {"type": "reasoning", "id": item_id, "summary": [], "content": [{"type": "reasoning_text", "text": text}]}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"type": "function_call", "id": item_id, "call_id": call_id, "name": name, "arguments": arguments, "status": status}


class ResponseEvents:
    """The event stream of one response, fed with OpenAI-shaped message deltas."""

    def __init__(self, builder: ResponseBuilder):
        self.b = builder
        self.seq = 0
        self.open: dict[str, Any] | None = None  # the output item being streamed
        self.text = ""

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return event

    def start(self) -> list[dict[str, Any]]:
        return [
            self._event("response.created", response=self.b.response("in_progress")),
            self._event("response.in_progress", response=self.b.response("in_progress")),
        ]

    def progress(self, r: Result) -> list[dict[str, Any]]:
        """return_progress: llama-server repeats response.in_progress with the prompt's progress."""
        return [self._event("response.in_progress", response=self.b.response("in_progress"),
                            prompt_progress=r.progress.as_dict())]

    def _begin(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        events = self._end()
        self.open = item
        self.text = ""
        index = len(self.b.items)
        events.append(self._event("response.output_item.added", output_index=index, item=dict(item)))
        if item["type"] == "message":
            events.append(self._event("response.content_part.added", item_id=item["id"], output_index=index, content_index=0,
                                      part={"type": "output_text", "text": "", "annotations": [], "logprobs": []}))
        elif item["type"] == "reasoning":
            events.append(self._event("response.content_part.added", item_id=item["id"], output_index=index, content_index=0,
                                      part={"type": "reasoning_text", "text": ""}))
        return events

    def _end(self) -> list[dict[str, Any]]:
        item = self.open
        if item is None:
            return []
        self.open = None
        index = len(self.b.items)
        ids = {"item_id": item["id"], "output_index": index}
        events = []
        if item["type"] == "message":
            part = {"type": "output_text", "text": self.text, "annotations": [], "logprobs": []}
            events.append(self._event("response.output_text.done", **ids, content_index=0, text=self.text, logprobs=[]))
            events.append(self._event("response.content_part.done", **ids, content_index=0, part=part))
            item = {**item, "status": "completed", "content": [part]}
        elif item["type"] == "reasoning":
            part = {"type": "reasoning_text", "text": self.text}
            events.append(self._event("response.reasoning_text.done", **ids, content_index=0, text=self.text))
            events.append(self._event("response.content_part.done", **ids, content_index=0, part=part))
            item = {**item, "content": [part]}
        else:
            events.append(self._event("response.function_call_arguments.done", **ids, name=item["name"], arguments=self.text))
            item = {**item, "arguments": self.text, "status": "completed"}
        self.b.items.append(item)
        events.append(self._event("response.output_item.done", output_index=index, item=item))
        return events

    def deltas(self, deltas: list[dict[str, Any]]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        index = len(self.b.items)
        for d in deltas:
            if d.get("reasoning_content"):
                if self.open is None or self.open["type"] != "reasoning":
                    events += self._begin({"type": "reasoning", "id": new_id("rs_"), "summary": [], "content": []})
                    index = len(self.b.items)
                self.text += d["reasoning_content"]
                events.append(self._event("response.reasoning_text.delta", item_id=self.open["id"], output_index=index,
                                          content_index=0, delta=d["reasoning_content"]))
            if d.get("content"):
                if self.open is None or self.open["type"] != "message":
                    events += self._begin(_message_item(new_id("msg_"), "", "in_progress"))
                    index = len(self.b.items)
                self.text += d["content"]
                events.append(self._event("response.output_text.delta", item_id=self.open["id"], output_index=index,
                                          content_index=0, delta=d["content"], logprobs=[]))
            for call in d.get("tool_calls") or []:
                fn = call.get("function") or {}
                if fn.get("name"):  # the first delta of a call names it
                    events += self._begin(_call_item(new_id("fc_"), call.get("id") or new_id("call_"), fn["name"], "", "in_progress"))
                    index = len(self.b.items)
                if fn.get("arguments") and self.open is not None:
                    self.text += fn["arguments"]
                    events.append(self._event("response.function_call_arguments.delta", item_id=self.open["id"],
                                              output_index=index, delta=fn["arguments"]))
        return events

    def finish(self, r: Result) -> list[dict[str, Any]]:
        events = []
        if self.open is None and not self.b.items:
            events += self._begin(_message_item(new_id("msg_"), "", "in_progress"))
        events += self._end()
        # Always response.completed (its status may say "incomplete"): the SDK's stream helper
        # and Codex-style clients wait for exactly this event.
        events.append(self._event("response.completed", response=self.b.response("completed", r)))
        return events
