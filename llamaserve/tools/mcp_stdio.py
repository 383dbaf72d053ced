"""An MCP server as a child process, newline-delimited JSON-RPC over its stdin and stdout, as the streams
the SDK's ClientSession reads and writes.

Ours rather than the SDK's stdio_client for three things a server needs: the child's exit is seen at once
(a crashed server is started again on the next call), a stopping llamaserve ends the child's whole process
group without the SDK's grace periods (a tool call may hold it for minutes), and the child's stderr is kept
for the log line that says why it failed. Lines that are not JSON-RPC are skipped, as llama-server skips them.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import subprocess

import anyio
import mcp_types
from mcp.shared.message import SessionMessage

from llamaserve.tools.mcp_config import McpServerSpec

log = logging.getLogger("llamaserve.mcp")

STDERR_TAIL = 20  # lines of a server's stderr kept for the message of its failure


class StdioChild:
    def __init__(self, spec: McpServerSpec):
        self.spec = spec
        self.process: anyio.abc.Process | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        self.eof = False

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None and not self.eof

    def diagnostics(self) -> str:
        parts = []
        if self.process is not None and self.process.returncode is not None:
            parts.append(f"exit status {self.process.returncode}")
        if self.stderr_tail:
            parts.append("stderr: " + " | ".join(self.stderr_tail))
        return "; ".join(parts)

    def kill(self) -> None:
        """The whole process group, at once: what the server started goes with it."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    @contextlib.asynccontextmanager
    async def streams(self, grace: float):
        """(read stream, write stream) for ClientSession. On exit the child gets `grace` seconds to leave
        once its stdin is closed, then its process group is killed."""
        spec = self.spec
        self.process = await anyio.open_process(
            [spec.command, *spec.args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=spec.cwd or None, env={**os.environ, **spec.env}, start_new_session=True)
        proc = self.process
        read_send, read_recv = anyio.create_memory_object_stream[SessionMessage | Exception](64)
        write_send, write_recv = anyio.create_memory_object_stream[SessionMessage](64)

        async def read_stdout() -> None:
            async with read_send:
                try:
                    await read_lines()
                finally:
                    # set before the stream closes: the session's "connection closed" then reads as a dead server
                    self.eof = True

        async def read_lines() -> None:
            buffer = b""
            with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                async for chunk in proc.stdout:
                    *lines, buffer = (buffer + chunk).split(b"\n")
                    for line in lines:
                        if not line.strip():
                            continue
                        try:
                            message = mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                        except ValueError:
                            log.debug("MCP server '%s' wrote a line that is not JSON-RPC: %.200r", spec.name, line)
                            continue
                        await read_send.send(SessionMessage(message))

        async def write_stdin() -> None:
            async with write_recv:
                with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                    async for message in write_recv:
                        data = message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                        await proc.stdin.send(data.encode("utf-8"))

        async def drain_stderr() -> None:
            # a child blocks once its stderr pipe is full: read it all, keep the tail, log it at debug level
            with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                async for chunk in proc.stderr:
                    for line in chunk.decode("utf-8", "replace").splitlines():
                        if line.strip():
                            self.stderr_tail.append(line.strip()[:300])
                            log.debug("MCP server '%s': %s", spec.name, line)

        async with anyio.create_task_group() as tg:
            tg.start_soon(read_stdout)
            tg.start_soon(write_stdin)
            tg.start_soon(drain_stderr)
            try:
                yield read_recv, write_send
            finally:
                with anyio.CancelScope(shield=True):
                    with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                        await proc.stdin.aclose()
                    with anyio.move_on_after(grace):
                        while proc.returncode is None:
                            await anyio.sleep(0.02)
                    self.kill()
                    # a grandchild outside the group may still hold the pipes: the readers are cancelled, not awaited
                tg.cancel_scope.cancel()
