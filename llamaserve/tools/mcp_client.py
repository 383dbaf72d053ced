"""The MCP servers of --mcp-servers-config/--mcp-servers-json, reached through the official SDK's
ClientSession: their tools listed as <server>_<tool>, called with the server's timeout.

Everything MCP runs on one asyncio loop of its own, on its own thread: the SDK's streams and task groups
stay on one loop whatever the HTTP side does, and the scheduler thread that owns the model never waits
on a server. A server that cannot start, or dies, is logged and shown by GET /tools/mcp; llamaserve goes
on, and the next call of one of its tools starts it again (after a cool-down of COOLDOWN seconds when
starting failed); one that never started is tried again when /tools is listed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from mcp.client.session import ClientSession
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT, PaginatedRequestParams

from llamaserve.tools.mcp_config import McpServerSpec
from llamaserve.tools.mcp_stdio import StdioChild

log = logging.getLogger("llamaserve.mcp")

WARMUP_TIMEOUT = 10.0  # seconds a server may take to start and list its tools
COOLDOWN = 5.0  # after a failed start, calls are refused this long before it is tried again
STOP_GRACE = 0.5  # seconds a server gets to exit once its stdin is closed


@dataclass
class McpTool:
    server: str
    name: str  # the server's own name for it
    description: str
    schema: dict

    @property
    def full_name(self) -> str:
        return f"{self.server}_{self.name}"

    def to_json(self) -> dict:
        return {"display_name": self.full_name, "tool": self.full_name, "type": "mcp", "permissions": {"write": False},
                "uses_cwd": False, "definition": {"type": "function", "function": {
                    "name": self.full_name, "description": self.description, "parameters": self.schema}}}


@dataclass
class _Server:
    spec: McpServerSpec
    state: str = "starting"  # starting, running, failed, stopped
    error: str = ""
    tools: list[McpTool] = field(default_factory=list)
    session: ClientSession | None = None
    child: StdioChild | None = None
    retry_after: float = 0.0
    holder: asyncio.Task | None = None
    release: asyncio.Event | None = None
    lock: asyncio.Lock | None = None

    @property
    def connected(self) -> bool:
        if self.session is None or self.holder is None or self.holder.done():
            return False
        return self.child.alive if self.child is not None else True


class McpClients:
    def __init__(self, specs: list[McpServerSpec]):
        self.servers = {s.name: _Server(s) for s in specs}
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="llamaserve-mcp", daemon=True)
        self._thread.start()
        self._stopping: asyncio.Event | None = None
        asyncio.run_coroutine_threadsafe(self._init(), self.loop).result()

    async def _init(self) -> None:
        self._stopping = asyncio.Event()
        for server in self.servers.values():
            server.lock = asyncio.Lock()

    def _submit(self, coro):
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    # --- what the HTTP side asks ---

    async def warm_up(self) -> None:
        """Start every server and list its tools, all at once, each within WARMUP_TIMEOUT."""
        await self._submit(self._warm_up())

    def tool_entries(self) -> list[dict]:
        self._retry_failed()
        seen: set[str] = set()
        out = []
        for tool in self._tools():
            if tool.full_name not in seen:
                seen.add(tool.full_name)
                out.append(tool.to_json())
        return out

    def find(self, full_name: str) -> McpTool | None:
        return next((t for t in self._tools() if t.full_name == full_name), None)

    def status(self) -> list[dict]:
        return [{"name": s.spec.name, "transport": s.spec.transport, "state": s.state, "error": s.error,
                 "tools": [t.full_name for t in s.tools]} for s in self.servers.values()]

    async def call(self, tool: McpTool, arguments: dict) -> dict:
        return await self._submit(self._call(tool, arguments))

    async def close(self) -> None:
        if self.loop.is_closed():
            return
        with contextlib.suppress(Exception):
            await self._submit(self._close_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.to_thread(self._thread.join, 5)
        if not self.loop.is_running():
            self.loop.close()

    def stop_now(self) -> None:
        """From any thread: calls in flight answer at once, servers' process groups are killed."""
        if self.loop.is_closed():
            return
        def stop() -> None:
            self._stopping.set()
            for server in self.servers.values():
                if server.child is not None:
                    server.child.kill()
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(stop)

    def _retry_failed(self) -> None:
        """A server that could not start has no tools listed, so no call would ever start it again: a listing
        does, in the background (its tools show from the next listing on), at most every COOLDOWN seconds."""
        now = time.monotonic()
        for server in self.servers.values():
            if server.state == "failed" and now >= server.retry_after and not self.loop.is_closed():
                server.retry_after = now + COOLDOWN  # one retry in flight at a time
                asyncio.run_coroutine_threadsafe(self._retry(server), self.loop)

    # --- on the MCP loop ---

    async def _retry(self, server: _Server) -> None:
        server.retry_after = 0.0
        if await self._ensure(server, WARMUP_TIMEOUT) is not None:
            log.info("MCP server '%s' started: %d tools", server.spec.name, len(server.tools))

    def _tools(self) -> list[McpTool]:
        return [t for s in self.servers.values() for t in s.tools]

    async def _warm_up(self) -> None:
        await asyncio.gather(*(self._ensure(s, WARMUP_TIMEOUT) for s in self.servers.values()), return_exceptions=True)
        for server in self.servers.values():
            if server.state == "running":
                log.info("MCP server '%s': %d tools", server.spec.name, len(server.tools))

    async def _ensure(self, server: _Server, timeout: float) -> ClientSession | None:
        """The server's session, started (again) if it is not running; None when it cannot be."""
        async with server.lock:
            if server.connected:
                return server.session
            if server.session is not None:
                why = server.child.diagnostics() if server.child is not None else ""
                log.warning("MCP server '%s' is no longer running%s; starting it again", server.spec.name, f" ({why})" if why else "")
                await self._disconnect(server)
            if self._stopping.is_set() or time.monotonic() < server.retry_after:
                return None
            if server.state != "failed":
                server.state = "starting"  # a failed one stays failed, with its reason, until it runs
            try:
                await asyncio.wait_for(self._connect(server), timeout)
            except BaseException as exc:  # noqa: BLE001 - wait_for's TimeoutError, OSError from the spawn, MCPError, ...
                if isinstance(exc, asyncio.CancelledError) and not self._stopping.is_set():
                    raise
                await self._disconnect(server)
                server.state, server.retry_after = "failed", time.monotonic() + COOLDOWN
                server.error = _describe(exc, server)
                log.warning("MCP server '%s' failed to start: %s", server.spec.name, server.error)
                return None
            server.state, server.error = "running", ""
            return server.session

    async def _connect(self, server: _Server) -> None:
        ready: asyncio.Future = asyncio.get_running_loop().create_future()
        server.release = asyncio.Event()
        server.holder = asyncio.create_task(self._hold(server, ready), name=f"mcp-{server.spec.name}")
        server.session, server.tools = await asyncio.shield(ready)

    async def _hold(self, server: _Server, ready: asyncio.Future) -> None:
        """Owns the transport and the session (the SDK's context managers must be left by the task that
        entered them) until released."""
        spec = server.spec
        try:
            async with contextlib.AsyncExitStack() as stack:
                if spec.transport == "stdio":
                    server.child = StdioChild(spec)
                    read, write = await stack.enter_async_context(server.child.streams(STOP_GRACE))
                else:
                    read, write = await stack.enter_async_context(_http_streams(spec))
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                tools, cursor = [], None
                while True:
                    page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
                    tools += [McpTool(spec.name, t.name, t.description or "", _schema(t.input_schema)) for t in page.tools]
                    cursor = page.next_cursor
                    if not cursor:
                        break
                ready.set_result((session, tools))
                await server.release.wait()
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the start
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError("stopped"))
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            if not ready.done():
                ready.set_exception(RuntimeError("the server's session ended"))

    async def _disconnect(self, server: _Server) -> None:
        server.session = None
        if server.release is not None:
            server.release.set()
        if server.holder is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(server.holder, STOP_GRACE + 2)
        server.holder = None

    async def _call(self, tool: McpTool, arguments: dict) -> dict:
        server = self.servers[tool.server]
        timeout = server.spec.timeout_ms / 1000
        for attempt in (1, 2):
            session = await self._ensure(server, WARMUP_TIMEOUT)
            if session is None:
                return {"error": f"MCP server unavailable: {tool.server}"
                                 + (f" ({server.error})" if server.error else "")}
            call = asyncio.ensure_future(session.call_tool(tool.name, arguments, read_timeout_seconds=timeout))
            stop = asyncio.ensure_future(self._stopping.wait())
            try:
                await asyncio.wait({call, stop}, timeout=timeout + 1, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
            if not call.done():
                call.cancel()
                with contextlib.suppress(BaseException):
                    await call
                if self._stopping.is_set():
                    return {"error": "server is shutting down"}
                return {"error": f"MCP tool call timed out after {server.spec.timeout_ms} ms"}
            try:
                return _result(call.result())
            except MCPError as exc:
                if exc.error.code == REQUEST_TIMEOUT:
                    return {"error": f"MCP tool call timed out after {server.spec.timeout_ms} ms"}
                # a server's own error may use the same code as the SDK's "connection closed" (-32000)
                if exc.error.code != CONNECTION_CLOSED or server.connected:
                    return {"error": exc.error.message or "MCP tool call failed"}
                lost = exc
            except Exception as exc:  # noqa: BLE001 - a broken transport: the stream under the session went away
                lost = exc
            # The connection dropped (the server died). Once more on a fresh start: the server gets the call
            # again, which a tool with side effects may see twice; a dead server cannot say whether it acted.
            log.warning("MCP server '%s' lost during a call of %s (%s)%s", tool.server, tool.name, _describe(lost, server),
                        "; starting it again" if attempt == 1 else "")
        return {"error": f"MCP server {tool.server} stopped during the call"}

    async def _close_all(self) -> None:
        self._stopping.set()
        await asyncio.gather(*(self._disconnect(s) for s in self.servers.values()), return_exceptions=True)
        for server in self.servers.values():
            server.state = "stopped"


@contextlib.asynccontextmanager
async def _http_streams(spec: McpServerSpec):
    from mcp.client.sse import sse_client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    if spec.transport == "sse":
        async with sse_client(spec.url, headers=spec.headers or None) as (read, write):
            yield read, write
        return
    async with create_mcp_http_client(headers=spec.headers or None) as client:
        async with streamable_http_client(spec.url, http_client=client) as streams:
            yield streams[0], streams[1]


def _schema(schema: Any) -> dict:
    return schema if isinstance(schema, dict) else {"type": "object", "properties": {}}


def _result(result) -> dict:
    """A tools/call result as llama-server answers it: the text parts joined, or the error they say."""
    text = "\n".join(part.text for part in result.content if getattr(part, "type", "") == "text")
    if result.is_error:
        return {"error": text or "MCP tool returned an error"}
    return {"plain_text_response": text}


def _describe(exc: BaseException, server: _Server) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        what = f"no answer within {WARMUP_TIMEOUT:.0f} s"
    elif isinstance(exc, FileNotFoundError):
        what = f"command not found: {server.spec.command}"
    elif isinstance(exc, MCPError):
        what = exc.error.message
    else:
        what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    why = server.child.diagnostics() if server.child is not None else ""
    return f"{what} ({why})" if why else what
