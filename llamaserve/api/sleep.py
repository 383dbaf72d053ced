"""Sleeping on idle (--sleep-idle-seconds), the HTTP side: which requests wake the model and hold it awake.

The scheduler unloads the model after N seconds without work (engine/scheduler.py). A request that may
need the model holds it from its first byte to its last (Scheduler.hold / release), so that it cannot
fall asleep between a route's reading the tokenizer and its task's arrival; one that comes while it
sleeps waits for the reload, which requests arriving together share. The routes that only report the
server's state answer from what stays loaded (the model's load-time facts, the counters, the empty
slots) and never wake it: a monitor polling /health or /metrics would otherwise keep it loaded.
"""

from __future__ import annotations

import asyncio

from starlette.routing import Match

from llamaserve.api import errors, webui
from llamaserve.engine import Scheduler
from llamaserve.errors import ServerError

# GET (and HEAD) of these read the server's state without the model. Their latencies are not timed in
# /metrics either (api/app.py): a scraper's own polls would change every scrape, awake or asleep.
STATE_ROUTES = frozenset({
    "/health", "/v1/health", "/props", "/metrics", "/slots", "/models", "/v1/models", "/lora-adapters",
    "/api/tags", "/api/ps", "/api/version",
})


def reads_state(method: str, path: str) -> bool:
    """Whether this request only reports the server's state (see STATE_ROUTES)."""
    return method in ("GET", "HEAD") and path in STATE_ROUTES


def needs_no_model(method: str, path: str, state_paths=STATE_ROUTES) -> bool:
    """Requests a sleeping model never wakes for: state reports, the web UI's files and its CORS proxy."""
    return (method in ("GET", "HEAD") and path in state_paths) or webui.is_public_path(path) or path == "/cors-proxy"


class SleepGate:
    """Pure ASGI middleware: every other request holds the model awake while it runs, and waits for it
    to load again when it sleeps. A request no route serves (404, 405) is answered without waking it."""

    def __init__(self, app, scheduler: Scheduler, routes, state_paths=STATE_ROUTES):
        self.app = app
        self.scheduler = scheduler
        self.routes = routes  # the app's routes, to tell a 404 from a request for the model
        self.state_paths = state_paths  # STATE_ROUTES, and a health alias (AIP_HEALTH_ROUTE) if any

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or needs_no_model(scope["method"], scope["path"], self.state_paths):
            return await self.app(scope, receive, send)
        scheduler = self.scheduler
        if scheduler.sleeping and not self._routed(scope):
            return await self.app(scope, receive, send)
        awake = scheduler.hold()
        try:
            if not awake.done():
                try:
                    await asyncio.wrap_future(awake)
                except ServerError as exc:  # the reload failed
                    return await errors.error_response(exc, scope["path"])(scope, receive, send)
            await self.app(scope, receive, send)
        finally:
            awake.cancel()  # a request that left while the model loaded: no one waits on it any more
            scheduler.release()

    def _routed(self, scope) -> bool:
        return any(route.matches(scope)[0] == Match.FULL for route in self.routes)
