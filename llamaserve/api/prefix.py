"""--api-prefix: every route, the web UI included, is served under the prefix and only there, as
llama-server registers each of its routes at prefix + path.

The prefix is taken off the path here, before anything else looks at it, so the routes, the public
paths of the key check, the loading gate and each API family's error envelope work as without one.
"""

from __future__ import annotations

from llamaserve.api import errors
from llamaserve.errors import NotFound


def normalize(prefix: str) -> str:
    """"llama", "/llama" and "/llama/" all mean "/llama"; "" and "/" mean no prefix."""
    prefix = prefix.strip().strip("/")
    return "/" + prefix if prefix else ""


class ApiPrefix:
    """Pure ASGI middleware: /PREFIX/x is served as /x; any other path is 404, except CORS preflights,
    which llama-server answers on every path before routing."""

    def __init__(self, app, prefix: str):
        self.app = app
        self.prefix = normalize(prefix)
        self.raw_prefix = self.prefix.encode("utf-8")

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or not self.prefix:
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path.startswith(self.prefix + "/"):
            # In place, not a copy: the request log around this reads what the routes note in the scope.
            scope["path"] = path[len(self.prefix):]
            raw = scope.get("raw_path")
            if raw is not None:
                if raw.startswith(self.raw_prefix + b"/"):
                    scope["raw_path"] = raw[len(self.raw_prefix):]
                else:  # the prefix was percent-encoded: the decoded path is what is left
                    scope.pop("raw_path")
            return await self.app(scope, receive, send)
        if scope["type"] == "http" and scope.get("method") == "OPTIONS":
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        await errors.error_response(NotFound("File Not Found"), path)(scope, receive, send)
