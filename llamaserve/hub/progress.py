"""What a download shows while it runs: a bar on a terminal (bytes, rate, time left), else a log line every
10% or 10 s; and the figures themselves for /health and the router's /models while a model arrives."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

log = logging.getLogger("llamaserve.hub")

_LOG_EVERY_S = 10.0
_DRAW_EVERY_S = 0.1


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _eta(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """Progress of the files one model needs. Thread-safe: the figures are read from other threads."""

    def __init__(self, stream=None, terminal: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.terminal = bool(isatty and isatty()) if terminal is None else terminal
        self._lock = threading.Lock()
        self._files: dict[str, dict[str, int]] = {}  # url -> {"done", "total"}, as llama-server's router shows it

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {url: dict(f) for url, f in self._files.items()}

    def file(self, name: str, url: str, total: int, start: int = 0) -> FileProgress:
        with self._lock:
            self._files[url] = {"done": start, "total": max(total, 0)}
        return FileProgress(self, name, url, total, start)

    def _set(self, url: str, done: int) -> None:
        with self._lock:
            if url in self._files:
                self._files[url]["done"] = done


class FileProgress:
    def __init__(self, owner: Progress, name: str, url: str, total: int, start: int):
        self.owner, self.name, self.url, self.total = owner, name, url, total
        self.start = self.done = start
        self.t0 = self._drawn = self._logged = time.monotonic()
        self._logged_tenth = start * 10 // total if total > 0 else 0
        if start:
            log.info("resuming %s at %s of %s", name, _mib(start), _mib(total) if total > 0 else "?")
        else:
            log.info("downloading %s (%s)", name, _mib(total) if total > 0 else "size unknown")

    def line(self, now: float) -> str:
        elapsed = max(now - self.t0, 1e-6)
        rate = (self.done - self.start) / elapsed
        text = f"{self.name}: {_mib(self.done)}"
        if self.total > 0:
            text += f" of {_mib(self.total)} ({100 * self.done // self.total}%)"
        text += f", {_mib(int(rate))}/s"
        if self.total > 0 and rate > 0:
            text += f", {_eta((self.total - self.done) / rate)} left"
        return text

    def update(self, done: int) -> None:
        self.done = done
        self.owner._set(self.url, done)
        now = time.monotonic()
        if self.owner.terminal:
            if now - self._drawn >= _DRAW_EVERY_S:
                self._drawn = now
                self._draw(now)
            return
        tenth = done * 10 // self.total if self.total > 0 else 0
        if tenth > self._logged_tenth or now - self._logged >= _LOG_EVERY_S:
            self._logged_tenth, self._logged = tenth, now
            log.info("downloading %s", self.line(now))

    def _draw(self, now: float) -> None:
        width = 30
        filled = width * self.done // self.total if self.total > 0 else 0
        bar = "█" * filled + "░" * (width - filled)
        try:
            self.owner.stream.write(f"\r\033[K{bar} {self.line(now)}")
            self.owner.stream.flush()
        except (OSError, ValueError):
            pass

    def finish(self, ok: bool) -> None:
        now = time.monotonic()
        if self.owner.terminal:
            self._draw(now)
            try:
                self.owner.stream.write("\n")
            except (OSError, ValueError):
                pass
        if ok:
            elapsed = now - self.t0
            log.info("downloaded %s: %s in %.1f s", self.name, _mib(self.done), elapsed)


def as_json(progress: Progress | None) -> dict[str, Any]:
    """The figures for an API answer: {url: {"done", "total"}}; {} when nothing downloads."""
    return progress.snapshot() if progress is not None else {}
