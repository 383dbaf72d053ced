"""Turn OpenAI-style chat messages into the shape one template can render.

Templates differ in what they accept: some reject a system role, some want content as a list of
typed parts, some read tool-call arguments as an object and others as a JSON string. Here the
messages are reshaped to fit the template's `TemplateCaps` (as llama.cpp's chat layer does), so
that any conversation renders with any template. Nothing here changes the caller's objects.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from llamaserve.chat.caps import TemplateCaps
from llamaserve.chat.errors import TemplateError

# Names under which a message's reasoning arrives; templates read the first, gpt-oss reads `thinking`.
REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


def plain_data(value: Any) -> Any:
    """A copy built only of JSON types (and tuples), so the sandbox never sees a caller's rich objects."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {plain_data(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_data(v) for v in value]
    if isinstance(value, tuple):
        return tuple(plain_data(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)):  # pydantic models
        return plain_data(value.model_dump())
    return f"<{type(value).__name__}>"  # as transformers does: templates only test such values for presence


def normalize_messages(messages: Any) -> list[dict]:
    """Plain dict copies, keys whose value is None dropped (as transformers does: templates handle a
    missing key, many print "None" or fail on a null one). An empty list renders what the template
    writes around no messages (llama-server's Anthropic route accepts it)."""
    if not isinstance(messages, (list, tuple)):
        raise TemplateError("messages must be an array of message objects")
    out = []
    for i, message in enumerate(messages):
        message = plain_data(message)
        if not isinstance(message, dict):
            raise TemplateError(f"messages[{i}] must be an object, got {type(message).__name__}")
        if not isinstance(message.get("role"), str):
            raise TemplateError(f"messages[{i}] has no 'role' string")
        out.append({k: v for k, v in message.items() if v is not None})
    return out


def alias_reasoning_fields(messages: list[dict]) -> list[dict]:
    """Give a message's reasoning under both `reasoning_content` and `thinking`, whichever name it came
    under, exactly as transformers does before rendering."""
    out = []
    for message in messages:
        reasoning = next((message[k] for k in REASONING_FIELDS if message.get(k) is not None), None)
        if reasoning is not None:
            message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        out.append(message)
    return out


def content_text(content: Any, *, where: str = "content") -> str:
    """The text of string or list-of-parts content; text parts are joined with newlines."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if not isinstance(content, (list, tuple)):
        raise TemplateError(f"{where} must be a string or an array of content parts")
    texts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind != "text":
            raise TemplateError(
                f"{where}: content part of type {kind!r} is not supported, only text parts can be rendered"
            )
        text = part.get("text", "")
        if not isinstance(text, str):
            raise TemplateError(f"{where}: a text part's 'text' must be a string")
        texts.append(text)
    return "\n".join(texts)


def adapt_messages(messages: Any, caps: TemplateCaps, *, developer_is_system: bool = True) -> list[dict]:
    """Normalized copies of `messages`, reshaped to what a template with `caps` renders."""
    msgs = normalize_messages(messages)

    if developer_is_system:
        # OpenAI's newer name for the system role; only gpt-oss templates know "developer" themselves.
        for m in msgs:
            if m["role"] == "developer":
                m["role"] = "system"

    if not caps.supports_system_role and msgs and msgs[0]["role"] == "system":
        # The template drops or rejects a system message: say it at the start of the next one instead.
        system = msgs.pop(0)
        if msgs:
            _prepend_text(msgs[0], content_text(system.get("content"), where="messages[0].content"))

    for i, m in enumerate(msgs):
        if "content" in m:
            if caps.requires_typed_content and isinstance(m["content"], str):
                m["content"] = [{"type": "text", "text": m["content"]}]
            elif not caps.supports_typed_content and isinstance(m["content"], (list, tuple)):
                m["content"] = content_text(m["content"], where=f"messages[{i}].content")
        if "tool_calls" in m and caps.supports_tool_calls:
            if "content" not in m:
                # some templates index `content` even on a tool-call turn
                m["content"] = [] if caps.requires_typed_content else ""
            m["tool_calls"] = [_shape_arguments(c, caps.supports_object_arguments, i) for c in m["tool_calls"]]
    return msgs


def _prepend_text(message: dict, text: str) -> None:
    content = message.get("content")
    if isinstance(content, (list, tuple)):
        parts = list(content)
        if parts and isinstance(parts[0], dict) and parts[0].get("type") == "text":
            parts[0] = {**parts[0], "text": text + "\n" + str(parts[0].get("text", ""))}
        else:
            parts.insert(0, {"type": "text", "text": text})
        message["content"] = parts
    elif content is None or content == "":
        message["content"] = text
    else:
        message["content"] = text + "\n" + str(content)


def _shape_arguments(call: Any, as_object: bool, index: int) -> Any:
    """OpenAI sends tool-call arguments as a JSON string, HF templates mostly want the object."""
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        return call
    function = call["function"]
    args = function.get("arguments")
    if as_object and isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as e:
            raise TemplateError(f"messages[{index}]: tool call arguments are not valid JSON: {e}") from None
    elif not as_object and isinstance(args, (dict, list)):
        args = json.dumps(args, ensure_ascii=False)
    else:
        return call
    return {**call, "function": {**function, "arguments": args}}
