"""Tools for templates that cannot show them: a system prompt describing them and the generic JSON reply.

Used by the generic format. History in tool form (assistant tool_calls, tool
results) is rewritten as plain messages the template can render.
"""

from __future__ import annotations

import json
from typing import Any, Sequence


def generic_tool_prompt(tools: Sequence[dict[str, Any]], parallel: bool = True) -> str:
    functions = [t.get("function", t) for t in tools]
    listing = "\n".join(
        json.dumps({k: fn[k] for k in ("name", "description", "parameters") if k in fn}, ensure_ascii=False)
        for fn in functions
    )
    several = (
        'To call several tools at once, reply with {"tool_calls": [{"name": ..., "arguments": {...}}, ...]} instead.\n'
        if parallel else ""
    )
    return (
        "You can call the following tools (JSON Schema of each tool's arguments given):\n"
        f"{listing}\n\n"
        "To call a tool, reply with only a JSON object, with no text before or after it:\n"
        '{"tool_call": {"name": <tool name>, "arguments": <arguments object>}}\n'
        f"{several}"
        "Tool results come back to you in a following message. If no tool is needed, answer normally."
    )


def native_tool_prompt(tools: Sequence[dict[str, Any]], example: str | None) -> str:
    """For a family's template that does not show tools (DeepSeek R1 / V3.1): the tools, and the family's own call syntax."""
    functions = [t.get("function", t) for t in tools]
    parts = ["## Tools\nYou have access to the following tools:"]
    for fn in functions:
        parts.append(f"### {fn['name']}\nDescription: {fn.get('description', '')}\n\n"
                     f"Parameters: {json.dumps(fn.get('parameters') or {}, ensure_ascii=False)}")
    if example:
        parts.append("To call a tool, write exactly this format (one call after another for several):\n" + example
                     + "\nwhere the arguments are valid JSON following the tool's Parameters schema.")
    return "\n\n".join(parts)


def add_system_text(messages: list[dict[str, Any]], text: str, system_role: bool = True) -> list[dict[str, Any]]:
    """`text` appended to the system message (one is added if there is none)."""
    out = list(messages)
    if out and out[0].get("role") == "system":
        out[0] = {**out[0], "content": (out[0].get("content") or "") + "\n\n" + text}
    elif system_role:
        out.insert(0, {"role": "system", "content": text})
    elif out:
        out[0] = {**out[0], "content": text + "\n\n" + (out[0].get("content") or "")}
    return out


def _arguments(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def generic_messages(
    messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]], parallel: bool = True,
    system_role: bool = True,
) -> list[dict[str, Any]]:
    """Messages for a template without tool support: the tool prompt in the system message, calls and results as text."""
    out: list[dict[str, Any]] = []
    from_tool: list[bool] = []
    names: dict[str, str] = {}  # tool_call_id -> tool name
    for msg in messages:
        m = dict(msg)
        calls = m.pop("tool_calls", None)
        if m.get("role") == "assistant" and calls:
            listed = []
            for c in calls:
                fn = c.get("function", c)
                names[c.get("id", "")] = fn.get("name", "")
                listed.append({"name": fn.get("name"), "arguments": _arguments(fn.get("arguments", {}))})
            wrapped = {"tool_call": listed[0]} if len(listed) == 1 else {"tool_calls": listed}
            text = json.dumps(wrapped, ensure_ascii=False)
            m["content"] = (m["content"] + "\n" + text) if m.get("content") else text
        elif m.get("role") == "tool":
            result = {"tool_response": {
                "tool": m.get("name") or names.get(m.get("tool_call_id", ""), ""),
                "content": m.get("content", ""),
            }}
            m = {"role": "user", "content": json.dumps(result, ensure_ascii=False)}
        from_tool.append(msg.get("role") == "tool")
        out.append(m)
    # templates that demand alternating roles: a tool result joins the user message before it
    merged: list[dict[str, Any]] = []
    for m, tool in zip(out, from_tool):
        if tool and merged and merged[-1].get("role") == "user":
            merged[-1] = {**merged[-1], "content": (merged[-1].get("content") or "") + "\n" + m["content"]}
        else:
            merged.append(m)
    out = merged
    return add_system_text(out, generic_tool_prompt(tools, parallel), system_role) if tools else out
