"""Where the file tools may go: every path resolves (symlinks included) inside one root directory.

The root is the operator's (--tools-root, else the directory the server started in), never the client's:
the x-tool-cwd header only picks a working directory inside it, since whoever sends the header could send
any other. Shell commands are not confined (a shell can always `cd /`); see the README.
"""

from __future__ import annotations

import os

from llamaserve.errors import InvalidRequest, PermissionDenied


class Confinement:
    def __init__(self, root: str):
        self.root = os.path.realpath(root)
        self._prefix = self.root if self.root.endswith(os.sep) else self.root + os.sep

    def contains(self, real_path: str) -> bool:
        return real_path == self.root or real_path.startswith(self._prefix)

    def resolve(self, path: str, cwd: str, what: str = "path") -> str:
        """The real absolute path `path` names (relative to `cwd`, '~' expanded); PermissionDenied if it
        leaves the root by '..', an absolute path or a symlink anywhere along it (the final file included)."""
        if not isinstance(path, str) or not path:
            raise InvalidRequest(f"{what} must be a non-empty string")
        if "\0" in path:
            raise InvalidRequest(f"{what} must not contain NUL characters")
        expanded = os.path.expanduser(path) if path.startswith("~") else path
        full = expanded if os.path.isabs(expanded) else os.path.join(cwd, expanded)
        # realpath follows every symlink that exists, the last component included, and keeps a missing tail
        # as written: a file about to be created under a symlinked directory resolves through that link
        real = os.path.realpath(full)
        if not self.contains(real):
            raise PermissionDenied(f"{what} '{path}' is outside the directory the tools may use ({self.root})")
        return real

    def working_directory(self, requested: str) -> str:
        """The real directory a call runs in: the x-tool-cwd header (inside the root), else the root."""
        if not requested:
            return self.root
        real = self.resolve(requested, self.root, "x-tool-cwd")
        if not os.path.isdir(real):
            raise InvalidRequest(f"x-tool-cwd '{requested}' is not a directory")
        return real
