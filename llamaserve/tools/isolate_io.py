"""File and process access for the tools inside an isolate: a running docker or podman container
(`<engine> exec`), or a POSIX host over ssh. Every operation is a command run there (sh, cat, wc, mkdir,
find, timeout; git when it has it), so nothing is confined on this machine's side: the isolate is the
boundary. Paths are POSIX paths of the isolate, relative ones taken from the call's working directory."""

from __future__ import annotations

import posixpath
import shlex

from llamaserve.tools.host_io import GIT_LIST_MAX_OUTPUT, JUNK_DIRS, LIST_TIMEOUT, Entry, Listing
from llamaserve.tools.process import OnChunk, Outcome, Processes
from llamaserve.tools.runtime import RuntimeSpec

AUX_TIMEOUT = 15  # seconds for a helper command (stat, cat, mkdir, find)
READ_MAX = 64 << 20
# ssh must never prompt (there is no terminal), and trusts only host keys the operator accepted beforehand
SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "PasswordAuthentication=no", "-o", "KbdInteractiveAuthentication=no",
               "-o", "StrictHostKeyChecking=yes")


class IsolateIO:
    def __init__(self, spec: RuntimeSpec, cwd: str, processes: Processes):
        self.spec = spec
        self.cwd = cwd  # in the isolate; "" = its own default directory
        self.processes = processes

    def _argv(self, inner: list[str], stdin: bool) -> list[str]:
        if self.spec.kind == "ssh":
            # the remote shell parses its command line again: the command travels as one quoted word
            return ["ssh", *SSH_OPTIONS, *([] if stdin else ["-n"]), self.spec.target, shlex.join(inner)]
        return [self.spec.engine, "exec", *(["-i"] if stdin else []), self.spec.target, *inner]

    def _exec(self, inner: list[str], max_output: int = 4096, stdin: bytes | None = None,
              combine_stderr: bool = True) -> Outcome:
        return self.processes.run(self._argv(inner, stdin is not None), cwd=None, max_output=max_output,
                                  timeout=AUX_TIMEOUT, stdin=stdin, combine_stderr=combine_stderr)

    def _test(self, flag: str, path: str) -> bool:
        res = self._exec(["sh", "-c", f'[ {flag} "$1" ]', "_", self.resolve(path)])
        return res.exit_code == 0 and not res.timed_out

    def resolve(self, path: str, what: str = "path") -> str:
        return path if not self.cwd or path.startswith("/") else posixpath.join(self.cwd, path)

    def is_file(self, path: str) -> bool:
        return self._test("-f", path)

    def is_dir(self, path: str) -> bool:
        return self._test("-d", path)

    def size(self, path: str) -> int | None:
        res = self._exec(["sh", "-c", 'wc -c < "$1"', "_", self.resolve(path)], 64)
        try:
            return int(res.output.strip()) if res.exit_code == 0 and not res.timed_out else None
        except ValueError:
            return None

    def read(self, path: str) -> bytes | None:
        # stderr apart: it must not land in the file's bytes
        res = self._exec(["cat", "--", self.resolve(path)], READ_MAX, combine_stderr=False)
        return res.raw if res.exit_code == 0 and not res.timed_out else None

    def write(self, path: str, content: bytes) -> bool:
        # the content goes on stdin: no command line for the far side to parse, no temporary file here
        res = self._exec(["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1"', "_", self.resolve(path)], stdin=content)
        return res.exit_code == 0 and not res.timed_out

    def readable_inside(self, path: str) -> bool:
        return True

    def run(self, argv: list[str], max_output: int, timeout: float, on_chunk: OnChunk | None = None) -> Outcome:
        # killing the local client would leave the command running in the isolate: `timeout` there ends it
        inner = ["timeout", f"{int(timeout)}s", *argv]
        if self.cwd:
            inner = ["sh", "-c", 'cd "$1" || exit 127; shift; exec "$@"', "_", self.cwd, *inner]
        return self.processes.run(self._argv(inner, True), cwd=None, max_output=max_output, timeout=timeout + 5,
                                  on_chunk=on_chunk, stdin=b"")

    def list_entries(self, base: str, max_depth: int, kind: str) -> Listing:
        base = self.resolve(base)
        listing = Listing()
        if kind == "file":
            res = self._exec(["sh", "-c", 'cd "$1" && git ls-files --cached --others --exclude-standard', "_", base],
                             GIT_LIST_MAX_OUTPUT, combine_stderr=False)
            if res.exit_code == 0 and not res.timed_out:
                listing.entries = [Entry(line) for line in res.output.splitlines()
                                   if line and not (max_depth and line.count("/") + 1 > max_depth)]
                return listing
        for dirs in ((True,) if kind == "dir" else (False,) if kind == "file" else (True, False)):
            res = self._find(base, max_depth, dirs)
            listing.truncated |= res.timed_out
            listing.entries += [Entry(line[2:] if line.startswith("./") else line, dirs)
                                for line in res.output.splitlines() if line and line != "."]
        return listing

    def _find(self, base: str, max_depth: int, dirs: bool) -> Outcome:
        # junk directories are printed (they can be picked as a working directory) but never entered;
        # -mindepth/-maxdepth work with busybox's find as well as GNU's
        prune = " -o ".join(f"-name {name}" for name in sorted(JUNK_DIRS))
        depth = f" -maxdepth {max_depth}" if max_depth else ""
        action = " -print -o -type d -print" if dirs else " -o -type f -print"
        command = f'cd "$1" && find . -mindepth 1{depth} \\( {prune} \\) -prune{action}'
        return self.processes.run(self._argv(["sh", "-c", command, "_", base], False), cwd=None,
                                  max_output=GIT_LIST_MAX_OUTPUT, timeout=LIST_TIMEOUT, combine_stderr=False)
