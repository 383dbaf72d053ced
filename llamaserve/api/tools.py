"""GET /tools (the tools on offer) and POST /tools (call one; "stream": true sends a command's output as
server-sent events), as llama-server serves them; 403 when no tool is enabled. Shared by the model server
and the router, which runs the tools itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response, StreamingResponse

from llamaserve.api.openapi import json_body
from llamaserve.api.requests import note, read_json_object
from llamaserve.api.sse import json_response, sse_data
from llamaserve.errors import FeatureDisabled, InvalidRequest, ServerError
from llamaserve.tools.toolbox import Toolbox

log = logging.getLogger("llamaserve.tools")

router = APIRouter()


def install(app, config) -> None:
    """The /tools routes, and the toolbox when the command line enables tools or MCP servers."""
    toolbox = None
    if config.tools or config.mcp_servers:  # a configuration with no server in it serves no /tools, as llama-server
        mcp = None
        if config.mcp_servers:
            from llamaserve.tools.mcp_client import McpClients

            mcp = McpClients(config.mcp_servers)
        toolbox = Toolbox(config.tools, config.tools_root or os.getcwd(), config.tools_runtime, mcp)
    app.state.toolbox = toolbox
    app.include_router(router)


async def start(app) -> None:
    """At start-up, before the server listens: the MCP servers' tools are listed (each within its warm-up
    time), so the first GET /tools shows them."""
    toolbox = app.state.toolbox
    if toolbox is not None:
        log.warning("security: %s enabled - do not expose to untrusted environments",
                    ", ".join(n for n, on in (("built-in tools", toolbox.builtins), ("MCP servers", toolbox.mcp)) if on))
        await asyncio.to_thread(toolbox.start)
        if toolbox.mcp is not None:
            await toolbox.mcp.warm_up()


async def stop(app) -> None:
    toolbox = app.state.toolbox
    if toolbox is not None:
        await toolbox.close()


def stop_now(app) -> None:
    """On SIGTERM/SIGINT: running commands and MCP calls end now, so their requests answer and drain."""
    toolbox = getattr(app.state, "toolbox", None)
    if toolbox is not None:
        toolbox.stop_now()


class ToolCall(BaseModel):
    """A call of one tool: its name, its parameters, and whether to stream its output."""

    model_config = ConfigDict(extra="allow")
    tool: str
    params: dict[str, Any] = {}
    stream: bool = False


def _toolbox(request: Request) -> Toolbox:
    toolbox = getattr(request.app.state, "toolbox", None)
    if toolbox is None:
        raise FeatureDisabled("this feature is disabled")
    return toolbox


@router.get("/tools")
async def list_tools(request: Request) -> Response:
    return json_response(_toolbox(request).listing())


@router.get("/tools/mcp")
async def mcp_servers(request: Request) -> Response:
    """Each configured MCP server's state: running, failed (and why), its tools."""
    toolbox = _toolbox(request)
    return json_response({"servers": toolbox.mcp.status() if toolbox.mcp is not None else []})


@router.post("/tools", openapi_extra=json_body(ToolCall))
async def call_tool(request: Request) -> Response:
    toolbox = _toolbox(request)
    body = await read_json_object(request)
    name, params, stream = body.get("tool"), body.get("params", {}), body.get("stream", False)
    if not isinstance(name, str) or not name:
        raise InvalidRequest("'tool' (a tool name) is required")
    if params is None:
        params = {}
    if not isinstance(params, dict) or not isinstance(stream, bool):
        raise InvalidRequest("'params' must be an object and 'stream' a boolean")
    note(request, tool=name)
    headers = request.headers
    where = {"cwd": headers.get("x-tool-cwd", ""), "runtime": headers.get("x-tool-runtime", ""),
             "resp_type": headers.get("x-resp-type", "")}
    if not stream:
        return json_response(await toolbox.call(name, params, **where))
    return await _streamed(request, toolbox, name, params, where)


async def _streamed(request: Request, toolbox: Toolbox, name: str, params: dict, where: dict) -> Response:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    gone = asyncio.Event()

    def push(chunk: str) -> bool:
        # called on the tool's worker thread; False stops the command once the client has left
        if chunk:
            loop.call_soon_threadsafe(queue.put_nowait, sse_data({"chunk": chunk}))
        return not gone.is_set()

    async def run() -> None:
        done: dict[str, Any] = {"done": True}
        try:
            result = await toolbox.call(name, params, stream=push, **where)
            if isinstance(result, dict) and "error" in result:
                done["error"] = str(result["error"])
        except ServerError as exc:
            done["error"] = exc.message
        except Exception as exc:  # the stream has begun: the error can only travel in its last event
            done["error"] = f"{type(exc).__name__}: {exc}"
        queue.put_nowait(sse_data(done))
        queue.put_nowait(None)

    # a refusal known before anything runs (unknown tool, no streaming, bad cwd) is a plain error response
    toolbox.check_stream(name, where["cwd"], where["runtime"])
    task = asyncio.create_task(run())

    async def events():
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            gone.set()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    return StreamingResponse(events(), media_type="text/event-stream")
