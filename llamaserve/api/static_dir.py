"""--path DIR: the directory's files at / in place of the built-in chat page, as llama-server mounts it.

A GET or HEAD of an existing file is answered with it, before the routes (a file named like a route
wins, as with llama-server's mount point); a path ending in / means its index.html. Everything else
goes on to the routes. The files are public: a browser loads a page before it can send an API key.
"""

from __future__ import annotations

import os
import stat

from starlette.staticfiles import StaticFiles

_METHODS = frozenset({"GET", "HEAD"})


class StaticDirectory:
    """The files of one directory by URL path (Starlette's StaticFiles does the file work: no escape
    from the directory, ETag / Last-Modified, 304)."""

    def __init__(self, directory: str):
        self.files = StaticFiles(directory=directory)

    def lookup(self, path: str) -> tuple[str, os.stat_result] | None:
        """(full path, stat) of the regular file a URL path names, or None."""
        relative = path.lstrip("/")
        if relative == "" or relative.endswith("/"):
            relative += "index.html"
        full, found = self.files.lookup_path(relative)
        if found is None or not stat.S_ISREG(found.st_mode):
            return None
        return full, found

    def has_file(self, path: str) -> bool:
        return self.lookup(path) is not None


class ServeDirectory:
    """Pure ASGI middleware: GET/HEAD of one of the directory's files is answered with it."""

    def __init__(self, app, directory: StaticDirectory):
        self.app = app
        self.directory = directory

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("method") in _METHODS:
            hit = self.directory.lookup(scope["path"])  # a stat() of a local file: no thread hop for it
            if hit is not None:
                response = self.directory.files.file_response(hit[0], hit[1], scope)
                return await response(scope, receive, send)
        await self.app(scope, receive, send)
