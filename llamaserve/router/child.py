"""One child llamaserve process serving one model on a loopback port: spawn, readiness, output, exit, stop."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys

import httpx

CHILD_HOST = "127.0.0.1"

log = logging.getLogger("llamaserve.router")

# "08:03:27.091 E llamaserve: " (a log line) or "llamaserve: error: " (a command-line error): the
# prefix of a child's line, dropped in the relay and in a failure reason.
_LOG_PREFIX = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} [A-Z] [\w.]+: ")
_CLI_ERROR = re.compile(r"^llamaserve: error: ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((CHILD_HOST, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    # Linux: the kernel kills the child if the router dies without stopping it (even by SIGKILL).
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class ChildFailed(Exception):
    """The child exited (or never answered) instead of serving."""

    def __init__(self, reason: str, exit_code: int | None):
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code


def child_argv(model_path: str, name: str, port: int | None, flags: list[str]) -> list[str]:
    """The child's command line; without a port (not running yet) it is shown without --port."""
    where = ["--host", CHILD_HOST] + (["--port", str(port)] if port is not None else [])
    return [sys.executable, "-m", "llamaserve", "-m", model_path, "--alias", name, *where, *flags]


class Child:
    """A `python -m llamaserve -m MODEL` subprocess. Its output is relayed to the router's log and its
    last lines kept, so a failure can be reported with the child's own words."""

    def __init__(self, name: str, argv: list[str], port: int):
        self.name = name
        self.argv = argv
        self.port = port
        self.url = f"http://{CHILD_HOST}:{port}"
        self.proc: asyncio.subprocess.Process | None = None
        self.exit_code: int | None = None
        self.exited = asyncio.Event()
        self.stopping = False  # the router asked it to stop: its exit is not a failure
        self._tail: collections.deque[str] = collections.deque(maxlen=40)
        self._relay_task: asyncio.Task | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def start(self) -> None:
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                env=_child_environment(),
                # its own session: a Ctrl-C meant for the router reaches the children only through it
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        except OSError as exc:
            self.exit_code = -1
            self._tail.append(f"cannot start {self.argv[0]}: {exc}")
            self.exited.set()
            raise ChildFailed(self.reason(), None) from None
        self._relay_task = asyncio.create_task(self._relay(), name=f"child-{self.name}")

    async def _relay(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        child_log = logging.getLogger(f"llamaserve.router.{self.name}")
        try:
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    break
                text = line.decode("utf-8", "replace").rstrip()
                if text:
                    self._tail.append(text)
                    child_log.info("%s", _LOG_PREFIX.sub("", text))
        finally:
            self.exit_code = await self.proc.wait()
            self.exited.set()

    def reason(self) -> str:
        """What went wrong, in the child's words: its last error line, else its last line, else its exit."""
        lines = list(self._tail)
        for line in reversed(lines):
            if " E " in line[:16] or _CLI_ERROR.match(line) or "error" in line.lower():
                return _CLI_ERROR.sub("", _LOG_PREFIX.sub("", line))
        if lines:
            return _LOG_PREFIX.sub("", lines[-1])
        return self.describe_exit()

    def describe_exit(self) -> str:
        code = self.exit_code
        if code is None:
            return "running"
        if code < 0:
            try:
                return f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exited with status {code}"

    async def wait_ready(self, client: httpx.AsyncClient) -> None:
        """Until /health answers 200; ChildFailed as soon as the process exits instead."""
        delay = 0.02
        while True:
            if self.exited.is_set():
                raise ChildFailed(self.reason(), self.exit_code)
            try:
                r = await client.get(self.url + "/health", timeout=5.0)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.exited.wait(), delay)
            delay = min(delay * 1.5, 0.25)

    async def info(self, client: httpx.AsyncClient) -> dict:
        """The child's own /v1/models entry (n_ctx, n_params, ...), merged into the router's listing."""
        try:
            r = await client.get(self.url + "/v1/models", timeout=5.0)
            data = r.json().get("data") or [{}]
            return data[0] if isinstance(data[0], dict) else {}
        except (httpx.HTTPError, ValueError, AttributeError):
            return {}

    async def stop(self, timeout: float) -> None:
        """SIGTERM, then SIGKILL if it is still there after `timeout` seconds; returns once it has exited."""
        self.stopping = True
        if self.proc is None or self.exited.is_set():
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            await asyncio.wait_for(asyncio.shield(self.exited.wait()), timeout)
        except asyncio.TimeoutError:
            log.warning("model %s: child did not stop within %.0f s, killing it", self.name, timeout)
            self.kill()
            await self.exited.wait()

    def kill(self) -> None:
        self.stopping = True
        if self.proc is not None and not self.exited.is_set():
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()


# The router serves /tools itself (its MCP servers, its tools); a child reading these would run its own too.
_ROUTER_ONLY_ENV = ("LLAMA_ARG_TOOLS", "LLAMA_ARG_TOOLS_RUNTIME", "LLAMA_ARG_MCP_SERVERS_CONFIG", "LLAMA_ARG_MCP_SERVERS_JSON", "LLAMA_ARG_AGENT")


def _child_environment() -> dict[str, str]:
    # Vertex AI's AIP_* variables are the router's too (its port): a child taking AIP_HTTP_PORT would
    # leave the loopback port it was given
    return {k: v for k, v in os.environ.items() if k not in _ROUTER_ONLY_ENV and not k.startswith("AIP_")}
