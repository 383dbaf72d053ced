"""Run a command for a tool: output (stdout and stderr together) read as it comes, a size cap that keeps
draining the pipe, a timeout and a stop that end the whole process group, and a kill of every running
command when the server stops."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from typing import Callable

OnChunk = Callable[[str], bool]  # a piece of output; False = stop the command (its client went away)


@dataclass
class Outcome:
    output: str  # as text (invalid UTF-8 replaced), with a note when it was cut at the size cap
    exit_code: int
    timed_out: bool = False
    raw: bytes = b""  # the bytes as read, up to the cap (a file read in an isolate)


class Processes:
    """The commands running now, so that a stopping server ends them instead of waiting for them."""

    def __init__(self):
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()
        self.stopping = False

    def run(self, argv: list[str], *, cwd: str | None, max_output: int, timeout: float,
            on_chunk: OnChunk | None = None, stdin: bytes | None = None, combine_stderr: bool = True) -> Outcome:
        try:
            proc = subprocess.Popen(
                argv, cwd=cwd, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT if combine_stderr else subprocess.DEVNULL,
                # its own process group: a timeout ends what the command started too (`sleep 99 &`)
                start_new_session=True)
        except OSError as exc:
            return Outcome(f"failed to spawn process: {exc.strerror or exc}", -1)
        with self._lock:
            if self.stopping:
                _kill_group(proc)
            self._running.add(proc)
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            _kill_group(proc)

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            if stdin is not None:
                try:
                    proc.stdin.write(stdin)
                except OSError:
                    pass  # the exit code says whether the command failed
                proc.stdin.close()
            return self._collect(proc, max_output, on_chunk, timed_out)
        finally:
            timer.cancel()
            with self._lock:
                self._running.discard(proc)

    @staticmethod
    def _collect(proc: subprocess.Popen, max_output: int, on_chunk: OnChunk | None,
                 timed_out: threading.Event) -> Outcome:
        out = bytearray()
        truncated = False
        decoder = _Utf8Pieces()
        fd = proc.stdout.fileno()
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            if truncated:
                continue  # keep reading, or the command blocks on a full pipe
            room = max_output - len(out)
            if len(data) > room:
                data, truncated = data[:room], True
            out += data
            if on_chunk is not None and data and not on_chunk(decoder.feed(data)):
                _kill_group(proc)
                break
        proc.stdout.close()
        code = proc.wait()
        text = out.decode("utf-8", "replace")
        if truncated:
            text += "\n[output truncated]"
        return Outcome(text, code, timed_out.is_set(), bytes(out))

    def stop_all(self) -> None:
        with self._lock:
            self.stopping = True
            running = list(self._running)
        for proc in running:
            _kill_group(proc)


class _Utf8Pieces:
    """Decodes a byte stream piecewise without splitting a character across two pieces."""

    def __init__(self):
        import codecs

        self._dec = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, data: bytes) -> str:
        return self._dec.decode(data)


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.returncode is not None:
        return  # reaped: its group id may be someone else's by now
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
