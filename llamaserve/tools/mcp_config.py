"""The mcpServers configuration (Cursor's and Claude Desktop's format, as llama-server reads it):
{"mcpServers": {"<name>": {"command", "args", "env", "cwd", "timeout_ms"}}} for a server started over
stdio, or {"url", "headers", "type": "http"|"sse"} for one reached over HTTP."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

DEFAULT_TIMEOUT_MS = 30000  # per tool call


@dataclass(frozen=True)
class McpServerSpec:
    name: str
    command: str = ""
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)  # over the server's own environment
    cwd: str = ""
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    transport: str = "stdio"  # stdio, http (streamable HTTP) or sse
    timeout_ms: int = DEFAULT_TIMEOUT_MS


def parse_mcp_servers(text: str, where: str) -> tuple[list[McpServerSpec], list[str]]:
    """(servers, warnings). ValueError, naming `where`, for JSON that is not valid or entries of the wrong
    shape; a document without mcpServers, or an entry with neither command nor url, is only a warning."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: invalid JSON: {exc}") from None
    servers = doc.get("mcpServers") if isinstance(doc, dict) else None
    if not isinstance(servers, dict):
        return [], [f"{where}: no mcpServers object, no MCP server configured"]
    out, warnings = [], []
    for name, entry in servers.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: mcpServers.{name} must be an object")
        command, url = _string(entry, "command", name, where), _string(entry, "url", name, where)
        if not command and not url:
            warnings.append(f"{where}: MCP server '{name}' has no command (nor url), skipped")
            continue
        args = entry.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ValueError(f"{where}: mcpServers.{name}.args must be an array of strings")
        timeout = entry.get("timeout_ms", DEFAULT_TIMEOUT_MS)
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
            raise ValueError(f"{where}: mcpServers.{name}.timeout_ms must be a positive integer")
        kind = _string(entry, "type", name, where) or ("stdio" if command else "http")
        if kind in ("streamable-http", "streamableHttp", "streamable_http"):
            kind = "http"
        if kind not in ("stdio", "http", "sse") or (kind == "stdio") != bool(command):
            raise ValueError(f"{where}: mcpServers.{name}: type '{kind}' does not fit a server with "
                             f"{'a command' if command else 'a url'}")
        out.append(McpServerSpec(name=name, command=command, args=tuple(args), env=_strings(entry, "env", name, where),
                                 cwd=_string(entry, "cwd", name, where), url=url,
                                 headers=_strings(entry, "headers", name, where), transport=kind, timeout_ms=timeout))
    return out, warnings


def _string(entry: dict, key: str, name: str, where: str) -> str:
    value = entry.get(key, "")
    if not isinstance(value, str):
        raise ValueError(f"{where}: mcpServers.{name}.{key} must be a string")
    return value


def _strings(entry: dict, key: str, name: str, where: str) -> dict[str, str]:
    value = entry.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"{where}: mcpServers.{name}.{key} must be an object of strings")
    return dict(value)
