"""The HTTP application: routers, error mapping, the loading gate and request logging."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from fastapi import FastAPI

from llamaserve.api import anthropic, embeddings, errors, infill, native, ollama, openai, responses, webui
from llamaserve.api.bridge import EngineBridge
from llamaserve.config import Config
from llamaserve.engine import Scheduler
from llamaserve.errors import Unavailable

log = logging.getLogger("llamaserve.http")

# Answered even while the model loads (they say so themselves).
_ALWAYS_OPEN = {"/health", "/v1/health", "/models", "/v1/models", "/api/tags", "/api/version"}


class RequestLog:
    """Pure ASGI middleware: one log line per request; 503 for model routes while loading."""

    def __init__(self, app, bridge: EngineBridge):
        self.app = app
        self.bridge = bridge

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path not in _ALWAYS_OPEN and not webui.is_public_path(path) and not self.bridge.scheduler.ready.is_set():
            return await errors.error_response(Unavailable("Loading model"), path)(scope, receive, send)
        t0 = time.perf_counter()
        status = [0]

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            ms = (time.perf_counter() - t0) * 1e3
            facts = scope.get("llamaserve.log") or {}
            extra = " ".join(f"{k}={v}" for k, v in facts.items())
            level = logging.INFO if path not in _ALWAYS_OPEN else logging.DEBUG
            log.log(level, "%s %s %d %.1f ms %s", scope["method"], path, status[0], ms, extra)


def create_app(config: Config, scheduler_factory=None) -> FastAPI:
    factory = scheduler_factory or (lambda deliver: Scheduler(config, deliver))
    bridge = EngineBridge(factory)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        bridge.bind(asyncio.get_running_loop())
        bridge.scheduler.start()
        try:
            yield
        finally:
            await asyncio.to_thread(bridge.scheduler.stop)

    app = FastAPI(title="llamaserve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.config = config
    app.state.bridge = bridge
    errors.install(app)
    app.include_router(native.router)
    app.include_router(openai.router)
    app.include_router(anthropic.router)
    app.include_router(responses.router)
    app.include_router(ollama.router)
    app.include_router(embeddings.router)
    app.include_router(infill.router)
    app.include_router(webui.router)
    app.add_middleware(RequestLog, bridge=bridge)
    return app
