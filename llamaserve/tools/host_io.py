"""File and process access on this machine for the tools, confined to the tools root (confine.py).

Listings come from `git ls-files` where the directory is in a git repository (so .gitignore applies), else
from a walk that reports junk directories (.git, node_modules, build, ...) but never enters them, nor any
symlinked directory (a link back to an ancestor would never end). Both stop after LIST_TIMEOUT seconds.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from llamaserve.tools.confine import Confinement
from llamaserve.tools.process import OnChunk, Outcome, Processes

LIST_TIMEOUT = 15.0  # seconds one listing may take, git and walker together
GIT_LIST_MAX_OUTPUT = 8 << 20
JUNK_DIRS = frozenset({".git", ".svn", ".hg", "node_modules", "__pycache__", ".venv", "venv", "dist", "build",
                       "target", ".cache", ".idea", ".vscode"})


@dataclass
class Entry:
    rel: str  # '/'-separated, relative to the listed directory
    is_dir: bool = False


@dataclass
class Listing:
    entries: list[Entry] = field(default_factory=list)
    truncated: bool = False  # the time budget ran out or a directory could not be read


class HostIO:
    def __init__(self, confinement: Confinement, cwd: str, processes: Processes):
        self.confinement = confinement
        self.cwd = cwd
        self.processes = processes

    def resolve(self, path: str, what: str = "path") -> str:
        return self.confinement.resolve(path, self.cwd, what)

    def is_file(self, path: str) -> bool:
        return os.path.isfile(self.resolve(path))

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(self.resolve(path))

    def size(self, path: str) -> int | None:
        try:
            return os.stat(self.resolve(path)).st_size
        except OSError:
            return None

    def read(self, path: str) -> bytes | None:
        real = self.resolve(path)
        try:
            # O_NOFOLLOW: the path was resolved a moment ago; a symlink put there since is refused
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def write(self, path: str, content: bytes) -> bool:
        real = self.resolve(path)
        try:
            os.makedirs(os.path.dirname(real), exist_ok=True)
            fd = os.open(real, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666)
        except OSError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        return True

    def readable_inside(self, real_path: str) -> bool:
        """Whether a listed file may be read: a symlink in the tree may point out of the root."""
        return self.confinement.contains(os.path.realpath(real_path))

    def run(self, argv: list[str], max_output: int, timeout: float, on_chunk: OnChunk | None = None) -> Outcome:
        return self.processes.run(argv, cwd=self.cwd, max_output=max_output, timeout=timeout, on_chunk=on_chunk)

    def list_entries(self, base: str, max_depth: int, kind: str) -> Listing:
        """Entries under the real directory `base`; kind "file", "dir" or "all"; max_depth 0 = no limit."""
        deadline = time.monotonic() + LIST_TIMEOUT
        if kind == "file":
            res = self.processes.run(["git", "-C", base, "ls-files", "--cached", "--others", "--exclude-standard"],
                                     cwd=None, max_output=GIT_LIST_MAX_OUTPUT, timeout=LIST_TIMEOUT, combine_stderr=False)
            if res.exit_code == 0 and not res.timed_out:
                listing = Listing()
                for line in res.output.splitlines():
                    if not line or (max_depth and line.count("/") + 1 > max_depth):
                        continue
                    if os.path.isfile(os.path.join(base, line)):
                        listing.entries.append(Entry(line))
                return listing
        return _walk(base, max_depth, kind, deadline)


def _walk(base: str, max_depth: int, kind: str, deadline: float) -> Listing:
    listing = Listing()
    stack: list[tuple[str, str, int]] = [(base, "", 0)]
    while stack:
        directory, rel_dir, depth = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            listing.truncated = True
            continue
        entries.sort(key=lambda e: e.name)
        for entry in entries:
            if time.monotonic() >= deadline:
                listing.truncated = True
                return listing
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                is_dir = entry.is_dir()
                is_file = not is_dir and entry.is_file()
            except OSError:
                continue
            if is_dir:
                if kind in ("dir", "all"):
                    listing.entries.append(Entry(rel, True))
                # junk directories stay listed (they may be picked as a working directory) but are never entered
                if entry.name in JUNK_DIRS or entry.is_symlink():
                    continue
                if not max_depth or depth + 1 < max_depth:
                    stack.append((entry.path, rel, depth + 1))
            elif is_file and kind in ("file", "all"):
                listing.entries.append(Entry(rel))
    return listing
