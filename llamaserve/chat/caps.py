"""What a chat template can render, found by rendering small sample conversations.

Like llama.cpp's template capability check, but observed through the output: a feature is
supported when a unique marker placed in the input shows up in the rendered text. A sample that
makes the template fail counts as "not supported", never as an error.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

# Renders messages with the template as is (no message adaptation); any exception means "no".
RawRender = Callable[..., str]

_CONTENT = "probe-content-5e1f"
_SYSTEM = "probe-system-7c2a"
_TOOL_NAME = "probe_tool_fn_3b9d"
_ARG_A = "probe-arg-a-81c4"
_ARG_B = "probe-arg-b-2d6e"
_REASONING = "probe-reasoning-4a7f"


@dataclass(frozen=True)
class TemplateCaps:
    """Capabilities of one chat template (names as llama-server reports them in /props)."""

    supports_system_role: bool = True
    supports_tools: bool = False  # the `tools` list is described to the model
    supports_tool_calls: bool = False  # assistant `tool_calls` are rendered
    supports_parallel_tool_calls: bool = False  # ...all of them, when there are several
    supports_object_arguments: bool = False  # tool-call `arguments` are read as an object, not a JSON string
    supports_string_content: bool = True  # message content may be a plain string
    supports_typed_content: bool = False  # message content may be a list of {"type": "text", ...} parts
    requires_typed_content: bool = False  # only the list form renders
    supports_thinking: bool = False  # the output depends on `enable_thinking`
    supports_preserve_reasoning: bool = False  # reasoning of earlier assistant turns is kept in the prompt
    supports_reasoning_effort: bool = False  # the output depends on `reasoning_effort`
    requires_tools: bool = False  # fails when `tools` is None (tool-use variants): give it [] instead

    def to_dict(self) -> dict[str, bool]:
        return dataclasses.asdict(self)


def probe_caps(render: RawRender) -> TemplateCaps:
    """Find the capabilities of the template behind `render(messages, tools=..., **kwargs) -> str`."""

    requires_tools = False

    def attempt(messages: list[dict], **kwargs: Any) -> str | None:
        if requires_tools and kwargs.get("tools") is None:
            kwargs["tools"] = []
        try:
            return render(messages, add_generation_prompt=True, **kwargs)
        except Exception:  # a template may fail in any way on input it does not expect
            return None

    def shows(marker: str, out: str | None) -> bool:
        return out is not None and marker in out

    # Content: a string, or a list of typed parts. A string-only template that prints a list
    # prints its Python repr, which contains the marker too: the quotes around `type` give it away.
    as_string = attempt([{"role": "user", "content": _CONTENT}])
    as_parts = attempt([{"role": "user", "content": [{"type": "text", "text": _CONTENT}]}])
    if as_string is None and as_parts is None:
        # tool-use variants of templates loop over `tools` unconditionally
        requires_tools = True
        as_string = attempt([{"role": "user", "content": _CONTENT}])
        as_parts = attempt([{"role": "user", "content": [{"type": "text", "text": _CONTENT}]}])
        requires_tools = as_string is not None or as_parts is not None
    string_ok = shows(_CONTENT, as_string)
    typed_ok = shows(_CONTENT, as_parts) and "'type'" not in as_parts and '"type"' not in as_parts
    if not string_ok and not typed_ok:
        string_ok = True  # nothing renders: keep the common form, rendering will report the error
    typed_only = typed_ok and not string_ok

    def content(text: str) -> Any:
        return [{"type": "text", "text": text}] if typed_only else text

    def user(text: str = "User message") -> dict:
        return {"role": "user", "content": content(text)}

    system_ok = shows(_SYSTEM, attempt([{"role": "system", "content": content(_SYSTEM)}, user()]))

    tools = [{
        "type": "function",
        "function": {
            "name": _TOOL_NAME,
            "description": "Tool description",
            "parameters": {
                "type": "object",
                "properties": {"arg": {"type": "string", "description": "Arg description"}},
                "required": ["arg"],
            },
        },
    }]
    tools_ok = shows(_TOOL_NAME, attempt([user()], tools=tools))
    if not tools_ok and system_ok:  # some templates describe tools only inside a system block
        tools_ok = shows(_TOOL_NAME, attempt([{"role": "system", "content": content("System")}, user()], tools=tools))

    def call_conversation(arguments: list[Any]) -> list[dict]:
        calls = [
            {"id": f"call0000{i + 1}", "type": "function", "function": {"name": _TOOL_NAME, "arguments": args}}
            for i, args in enumerate(arguments)
        ]
        return [
            user(),
            {"role": "assistant", "content": content(""), "tool_calls": calls},
            {"role": "tool", "content": content("Tool response"), "tool_call_id": "call00001", "name": _TOOL_NAME},
            {"role": "assistant", "content": content("The tool response was 'tool response'")},
            user(),
        ]

    # Arguments as an object is what HF templates expect; a template that prints the object's
    # Python repr wants a JSON string instead.
    out = attempt(call_conversation([{"arg": _ARG_A}]), tools=tools)
    object_args = shows(_ARG_A, out) and "{'arg'" not in out
    calls_ok = object_args or shows(_ARG_A, attempt(call_conversation(['{"arg": "%s"}' % _ARG_A]), tools=tools))

    parallel_ok = False
    if calls_ok:
        pair = [{"arg": _ARG_A}, {"arg": _ARG_B}] if object_args else [
            '{"arg": "%s"}' % _ARG_A, '{"arg": "%s"}' % _ARG_B]
        out = attempt(call_conversation(pair), tools=tools)
        parallel_ok = shows(_ARG_A, out) and shows(_ARG_B, out)

    # Thinking switches and reasoning effort: does the output react to them at all?
    on = attempt([user()], enable_thinking=True)
    off = attempt([user()], enable_thinking=False)
    thinking_ok = on is not None and off is not None and on != off
    low = attempt([user()], reasoning_effort="low")
    high = attempt([user()], reasoning_effort="high")
    effort_ok = low is not None and high is not None and low != high

    # Reasoning of an earlier turn, not only of the last one, survives in the prompt.
    keep = {"enable_thinking": True, "preserve_thinking": True, "clear_thinking": False,
            "truncate_history_thinking": False, "drop_thinking": False}
    history = [
        user(),
        {"role": "assistant", "content": content("Assistant message"), "reasoning_content": _REASONING},
        user(),
        {"role": "assistant", "content": content("Assistant message"), "reasoning_content": "Reasoning content"},
        user(),
    ]
    preserve_ok = shows(_REASONING, attempt(history, **keep))

    return TemplateCaps(
        supports_system_role=system_ok,
        supports_tools=tools_ok,
        supports_tool_calls=calls_ok,
        supports_parallel_tool_calls=parallel_ok,
        supports_object_arguments=object_args,
        supports_string_content=string_ok,
        supports_typed_content=typed_ok,
        requires_typed_content=typed_only,
        supports_thinking=thinking_ok,
        supports_preserve_reasoning=preserve_ok,
        supports_reasoning_effort=effort_ok,
        requires_tools=requires_tools,
    )
