"""The tools a server offers (the built-in ones --tools names, then the MCP servers' tools) and one call of
one of them: its working directory and runtime from the request's headers, the blocking work on a worker
thread, one log line per call."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from llamaserve.errors import InvalidRequest, PermissionDenied
from llamaserve.tools.builtin import BuiltinTool, enabled_builtins
from llamaserve.tools.confine import Confinement
from llamaserve.tools.host_io import HostIO
from llamaserve.tools.isolate_io import IsolateIO
from llamaserve.tools.owned_container import OwnedContainer
from llamaserve.tools.process import Processes
from llamaserve.tools.runtime import RuntimeSpec, parse_runtime

log = logging.getLogger("llamaserve.tools")

# params the server fills from headers; a model's own values for them are dropped, as llama-server drops them
_HEADER_PARAMS = ("cwd", "runtime", "resp_type")


class UnknownTool(InvalidRequest):
    status = 404  # llama-server's status for a tool it does not have (or that cannot stream)


class Toolbox:
    def __init__(self, names: list[str], root: str, runtime: str = "", mcp=None):
        self.builtins: list[BuiltinTool] = enabled_builtins(names)
        self.confinement = Confinement(root)
        self.mcp = mcp  # tools/mcp_client.McpClients or None
        self.processes = Processes()
        # --tools-runtime (checked at start-up): a running target every call goes to, or an image to run one from
        self.runtime: RuntimeSpec | None = parse_runtime(runtime, for_call=False) if runtime else None
        self.owned = OwnedContainer(self.runtime.engine, self.runtime.target) if self.runtime and self.runtime.kind == "image" else None

    def start(self) -> None:
        """Blocking: the container of --tools-runtime <engine>:<image>, started before the server listens."""
        if self.owned is not None:
            self.owned.spec()

    def listing(self) -> list[dict]:
        tools = [t.to_json() for t in self.builtins]
        if self.mcp is not None:
            taken = {t.name for t in self.builtins}
            tools += [d for d in self.mcp.tool_entries() if d["tool"] not in taken]
        return tools

    def _builtin(self, name: str) -> BuiltinTool | None:
        return next((t for t in self.builtins if t.name == name), None)

    def _check_where(self, cwd_header: str, runtime_header: str) -> None:
        """Refuses, before anything runs, a runtime header llama-server refuses, or a working directory out
        of the root (on this machine; an isolate's directories are its own business)."""
        if runtime_header:
            parse_runtime(runtime_header, for_call=True)
            if self.runtime is None:
                # a header naming a container or an ssh host would take the file tools out of the root, and
                # the server's credentials to any container or host they reach: only where the operator chose
                # runtimes (llama-server takes the header always)
                raise PermissionDenied("x-tool-runtime: tool runtimes are off on this server (start it with "
                                       "--tools-runtime to allow them)")
        elif self.runtime is None:
            self.confinement.working_directory(cwd_header)

    def _io(self, cwd_header: str, runtime_header: str) -> HostIO | IsolateIO:
        self._check_where(cwd_header, runtime_header)
        """Where the call runs: the header's runtime, else --tools-runtime's, else this machine inside the root.
        Blocking (it may start the --tools-runtime container again)."""
        if runtime_header:
            return IsolateIO(parse_runtime(runtime_header, for_call=True), cwd_header, self.processes)
        if self.owned is not None:
            return IsolateIO(self.owned.spec(), cwd_header, self.processes)
        if self.runtime is not None:
            return IsolateIO(self.runtime, cwd_header, self.processes)
        return HostIO(self.confinement, self.confinement.working_directory(cwd_header), self.processes)

    def _run_builtin(self, builtin: BuiltinTool, params: dict, cwd: str, runtime: str, stream) -> dict | None:
        io = self._io(cwd, runtime)
        return builtin.run(params, io, stream) if builtin.streams else builtin.run(params, io)

    def check_stream(self, name: str, cwd: str, runtime: str) -> None:
        """What a streamed call would refuse before it runs (unknown tool, no streaming, a bad working
        directory or runtime), raised now: the refusal is then a plain error response, not a stream."""
        builtin = self._builtin(name)
        if builtin is None and (self.mcp is None or self.mcp.find(name) is None):
            raise UnknownTool(f'unknown tool "{name}"')
        if builtin is None or not builtin.streams:
            raise UnknownTool(f'tool "{name}" does not support stream = true')
        self._check_where(cwd, runtime)

    async def call(self, name: str, params: dict, *, cwd: str = "", runtime: str = "", resp_type: str = "",
                   stream: Callable[[str], bool] | None = None) -> dict | None:
        """The tool's answer ({"error": ...} for a failure the model should read); with `stream` the output
        goes there piece by piece and None is returned. Raises ServerError for a bad request."""
        params = {k: v for k, v in params.items() if k not in _HEADER_PARAMS}
        t0 = time.perf_counter()
        builtin = self._builtin(name)
        mcp_tool = None if builtin is not None or self.mcp is None else self.mcp.find(name)
        if builtin is None and mcp_tool is None:
            raise UnknownTool(f'unknown tool "{name}"')
        if stream is not None and not (builtin is not None and builtin.streams):
            raise UnknownTool(f'tool "{name}" does not support stream = true')
        outcome = "error"
        try:
            if builtin is not None:
                self._check_where(cwd, runtime)
                if resp_type:
                    params["resp_type"] = resp_type
                result = await asyncio.to_thread(self._run_builtin, builtin, params, cwd, runtime, stream)
            else:
                result = await self.mcp.call(mcp_tool, params)
            outcome = "error: " + str(result["error"])[:200] if isinstance(result, dict) and "error" in result else "ok"
            return result
        except Exception as exc:
            outcome = f"refused: {getattr(exc, 'message', exc)}"
            raise
        finally:
            log.info("tool %s%s -> %s (%.0f ms)", name, _summary(params, cwd, runtime), outcome, (time.perf_counter() - t0) * 1e3)

    async def close(self) -> None:
        self.processes.stop_all()
        if self.owned is not None:
            await asyncio.to_thread(self.owned.stop)
        if self.mcp is not None:
            await self.mcp.close()

    def stop_now(self) -> None:
        """From a signal handler: end running commands and MCP calls at once, so requests can finish."""
        self.processes.stop_all()
        if self.mcp is not None:
            self.mcp.stop_now()


def _summary(params: dict, cwd: str, runtime: str) -> str:
    """What the call was about, for its log line: the path or command (cut short), the headers' cwd and runtime."""
    parts = []
    for key in ("path", "command"):
        value = params.get(key)
        if isinstance(value, str):
            parts.append(f"{key}={value[:120]!r}")
    if cwd:
        parts.append(f"cwd={cwd[:120]!r}")
    if runtime:
        parts.append(f"runtime={runtime[:120]!r}")
    return (" " + " ".join(parts)) if parts else ""
