"""The HTTP application: routers, error mapping, access control, limits, the loading gate, request logging,
and the layers it shares with the router's app (--path files, --api-prefix, llama-server's header names)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time

from fastapi import FastAPI

from llamaserve.api import anthropic, cors_proxy, embeddings, errors, infill, lora, metrics, native, ollama, openai, responses, slots, streams, tools, vertex, webui
from llamaserve.api.access import AccessControl
from llamaserve.api.bridge import EngineBridge
from llamaserve.api.header_names import HeaderNames
from llamaserve.api.limits import BodyLimit
from llamaserve.api.prefix import ApiPrefix
from llamaserve.api.prompt_log import PromptLoggingBridge
from llamaserve.api.sleep import STATE_ROUTES, SleepGate, reads_state
from llamaserve.api.static_dir import ServeDirectory, StaticDirectory
from llamaserve.api.stream_sessions import StreamSessions
from llamaserve.api.timeouts import WriteTimeout
from llamaserve.config import Config
from llamaserve.engine import Scheduler
from llamaserve.errors import Unavailable
from llamaserve.hub.fetch import fetch_model
from llamaserve.hub.progress import Progress

log = logging.getLogger("llamaserve.http")

# Answered even while the model loads (they say so themselves).
_ALWAYS_OPEN = {"/health", "/v1/health", "/models", "/v1/models", "/api/tags", "/api/version"}


class LoadingGate:
    """Pure ASGI middleware: 503 for model routes while the model loads."""

    def __init__(self, app, bridge: EngineBridge):
        self.app = app
        self.bridge = bridge

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and not self.bridge.scheduler.ready.is_set():
            path = scope["path"]
            if path not in _ALWAYS_OPEN and not webui.is_public_path(path):
                return await errors.error_response(Unavailable("Loading model"), path)(scope, receive, send)
        await self.app(scope, receive, send)


class RequestLog:
    """Pure ASGI middleware: one log line per request.

    The line holds the method, path (never the query string), status, time and the
    token counts a route noted; never headers (API keys) or body text (prompts).
    With --metrics the time also goes to the latency histogram of the route that answered."""

    def __init__(self, app, metrics: metrics.ServerMetrics | None = None):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        t0 = time.perf_counter()
        status = [0]

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path_served = scope["path"]  # without the --api-prefix (taken off inside), which `path` shows
            ms = (time.perf_counter() - t0) * 1e3
            if self.metrics is not None and not reads_state(scope["method"], path_served):
                # the route's path template (the router sets it in the shared scope): few label values
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                self.metrics.observe(scope["method"], route, ms / 1e3)
            facts = scope.get("llamaserve.log") or {}
            extra = " ".join(f"{k}={v}" for k, v in facts.items())
            level = logging.INFO if path_served not in _ALWAYS_OPEN else logging.DEBUG
            log.log(level, "%s %s %d %.1f ms %s", scope["method"], path, status[0], ms, extra)


def add_shared_layers(app: FastAPI, config: Config, *, request_log: bool = False,
                      request_metrics: metrics.ServerMetrics | None = None) -> None:
    """Middleware a model server and the router both have, added innermost first around what the app
    added before: --path files (outside the loading gate: a page loads while the model does), API keys
    and CORS, --api-prefix, the request log (with the latency histogram of --metrics), the header names and outermost
    the write timeout of -to."""
    public_file = None
    if config.static_path and config.webui:
        directory = StaticDirectory(config.static_path)
        app.add_middleware(ServeDirectory, directory=directory)
        public_file = directory.has_file
    app.add_middleware(AccessControl, config=config, public_file=public_file)
    if config.api_prefix:
        app.add_middleware(ApiPrefix, prefix=config.api_prefix)
    if request_log:
        # outside the prefix, so that it logs the path as requested, and the 404 of one without the prefix
        app.add_middleware(RequestLog, metrics=request_metrics)
    app.add_middleware(HeaderNames)
    app.add_middleware(WriteTimeout, seconds=config.timeout)  # -to on writes: outermost, it sees every send


def create_app(config: Config, scheduler_factory=None) -> FastAPI:
    factory = scheduler_factory or (lambda deliver: Scheduler(config, deliver))
    bridge = PromptLoggingBridge(factory, config.log_prompts_dir) if config.log_prompts_dir else EngineBridge(factory)
    sessions = StreamSessions()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        bridge.bind(asyncio.get_running_loop())
        bridge.scheduler.start()
        await tools.start(app)
        try:
            yield
        finally:
            await tools.stop(app)
            sessions.close()
            await asyncio.to_thread(bridge.scheduler.stop)

    # No /docs or /openapi.json route: the schema is built in-process (tests, tooling) with app.openapi().
    app = FastAPI(title="llamaserve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.config = config
    app.state.bridge = bridge
    app.state.stream_sessions = sessions
    app.state.metrics = metrics.ServerMetrics(bridge.scheduler) if config.endpoint_metrics else None
    app.state.download = None
    if config.remote_model:
        # the model comes from the hub or a URL: fetched on the scheduler thread, progress shown by /health
        app.state.download = Progress()
        bridge.scheduler.before_load = functools.partial(fetch_model, config, app.state.download)
    errors.install(app)
    app.include_router(native.router)
    app.include_router(slots.router)
    app.include_router(metrics.router)
    app.include_router(openai.router)
    app.include_router(anthropic.router)
    app.include_router(responses.router)
    app.include_router(ollama.router)
    app.include_router(embeddings.router)
    app.include_router(infill.router)
    app.include_router(lora.router)
    app.include_router(streams.router)
    tools.install(app, config)
    app.include_router(webui.router)
    app.include_router(cors_proxy.router)
    if config.predict_route:
        vertex.install(app, config)  # last: its instances may name any route
    # Innermost first: resumable streams (what it detaches from the client is the route itself), with
    # --sleep-idle-seconds the sleep gate (it holds the model for the request, or wakes it), the loading
    # gate, the body limit, then the shared layers (outermost: header names, the request log, the prefix,
    # CORS/keys). Being middleware, they apply to every route, including
    # routers added later.
    app.add_middleware(streams.ResumableStreams, sessions=sessions)
    if config.sleep_idle_seconds > 0:
        state_paths = STATE_ROUTES | ({config.predict_health_route} if config.predict_health_route else set())
        app.add_middleware(SleepGate, scheduler=bridge.scheduler, routes=app.router.routes, state_paths=state_paths)
    app.add_middleware(LoadingGate, bridge=bridge)
    app.add_middleware(BodyLimit, limit=config.max_body_size)
    add_shared_layers(app, config, request_log=True, request_metrics=app.state.metrics)
    return app
