"""The router's HTTP app: model listing and load/unload, router /props, the resumable-stream routes
(router/streams.py), and every other path proxied to the child serving the request's model (the body's
"model", or ?model= for requests without a JSON body)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from datetime import datetime, timezone
from typing import Any

import httpx
import orjson
from fastapi import FastAPI, Request
from starlette.responses import Response

import llamaserve
from llamaserve.api import cors_proxy, errors, tools, webui
from llamaserve.api.app import add_shared_layers
from llamaserve.api.native import ignored_options
from llamaserve.api.sse import json_response
from llamaserve.api.streams import conversation_id
from llamaserve.config import Config
from llamaserve.errors import InvalidRequest, NotFound
from llamaserve.router import streams
from llamaserve.cli.children import read_models_preset
from llamaserve.router.catalog import Catalog, CatalogError
from llamaserve.router.conversations import ConversationOwners
from llamaserve.router.pool import ModelPool, ModelState, child_url
from llamaserve.router.proxy import forward, unreachable, upstream_headers

log = logging.getLogger("llamaserve.router")

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def _pool(request: Request) -> ModelPool:
    return request.app.state.pool


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.lower() in ("1", "true", "on", "yes")


def _json_body(request: Request, body: bytes) -> Any:
    """The JSON body, or None when there is none (or it is not JSON and does not claim to be)."""
    if not body.strip():
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "json" in request.headers.get("content-type", ""):
            raise InvalidRequest(f"invalid JSON in request body: {exc}") from None
        return None


def requested_model(request: Request, body: Any) -> str:
    """The model a request is for: body "model", else ?model=, else the default model."""
    name = body.get("model") if isinstance(body, dict) else None
    if name is None and isinstance(body, dict) and request.url.path.startswith("/api/"):
        name = body.get("name")  # Ollama's older spelling (/api/show, ...)
    if name is None or name == "":
        name = request.query_params.get("model") or ""
    if not isinstance(name, str):
        raise InvalidRequest("'model' must be a string")
    if not name:
        name = _pool(request).catalog.default
        if not name:
            raise InvalidRequest("model name is missing from the request")
    return name


async def _model_name_from_body(request: Request) -> str:
    body = _json_body(request, await request.body())
    name = body.get("model") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name:
        raise InvalidRequest("'model' (a model name) is required")
    return name


def _ollama_entry(name: str, path: str) -> dict[str, Any]:
    """A model as Ollama's /api/tags lists it (the details a child knows come with /api/show)."""
    try:
        stat = os.stat(path)
        size, modified = stat.st_size, datetime.fromtimestamp(stat.st_mtime, timezone.utc)
    except OSError:
        size, modified = 0, datetime.now(timezone.utc)
    return {"name": name, "model": name, "modified_at": modified.isoformat().replace("+00:00", "Z"),
            "size": size, "digest": "", "details": {"format": "gguf"}}


async def _acquire_while_connected(request: Request, pool: ModelPool, name: str, autoload: bool) -> ModelState | None:
    """pool.acquire, given up (None) if the client disconnects while it waits (for a load, or a place):
    a load nobody waits for anymore then ends before it takes a running model's place."""
    acquire = asyncio.ensure_future(pool.acquire(name, autoload))

    async def client_gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watch = asyncio.ensure_future(client_gone())
    try:
        await asyncio.wait({acquire, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
    if acquire.done():
        return acquire.result()
    acquire.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await acquire
    return None


def _rebuilt_catalog(config: Config) -> Catalog:
    """GET /models?reload=1: the catalog again, from the preset file, the cache and --models-dir as they are now."""
    try:
        if config.models_preset:
            config.model_presets = read_models_preset(config.models_preset)
        return Catalog.build(config)
    except (ValueError, CatalogError) as exc:
        raise InvalidRequest(f"cannot reload the models: {exc}") from None


def _repo_like(name: str) -> bool:
    return name.count("/") == 1 and not name.startswith("/")


def model_tags(config: Config, preset_flags: dict[str, list[str]]) -> list[str]:
    """A model's --tags (its preset's, or the router's own, which win as for every flag), listed as a
    single-model server lists them: each once, sorted."""
    tokens = {**preset_flags, **config.child_flags}.get("tags") or []  # ["--tags", "a,b"]
    return sorted({tag.strip() for value in tokens[1:] for tag in value.split(",") if tag.strip()})


def create_router_app(config: Config) -> FastAPI:
    catalog = Catalog.build(config)

    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per proxied request and health poll

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        # Children are on loopback: no proxies from the environment, no pool limit (streams are long).
        timeout = httpx.Timeout(connect=10.0, read=float(config.timeout), write=float(config.timeout), pool=None)
        client = httpx.AsyncClient(timeout=timeout, trust_env=False,
                                   limits=httpx.Limits(max_connections=None, max_keepalive_connections=32))
        pool = ModelPool(config, catalog, client)
        app.state.pool = pool
        pool.start()
        log.info("models: %s; default: %s", ", ".join(catalog.entries), catalog.default or "none")
        await tools.start(app)
        try:
            yield
        finally:
            await tools.stop(app)
            await pool.close()
            await client.aclose()

    app = FastAPI(title="llamaserve router", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.config = config
    app.state.owners = owners = ConversationOwners()
    errors.install(app)
    # API keys and CORS are checked here, at the router, by the same middleware as a single-model server
    # (with --path, --api-prefix and the header names: add_shared_layers below). Children get the same
    # keys on their command line (config.child_flags), and proxied requests carry the client's own
    # Authorization / x-api-key headers. Children have no prefix: the router takes it off the path
    # before it proxies.

    # The chat page is the router's own (its model picker lists /v1/models and loads with /models/load):
    # opening it must not load a model.
    app.include_router(webui.router)
    tools.install(app, config)  # the router runs the tools itself: they are no model's

    @app.get("/health")
    @app.get("/v1/health")
    async def health() -> Response:
        return json_response({"status": "ok"})

    @app.get("/models")
    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        pool = _pool(request)
        if _flag(request.query_params.get("reload"), False):
            await pool.reload(_rebuilt_catalog(config))
        now = int(time.time())
        data = []
        for s in pool.listed():
            entry = pool.describe(s, now)
            entry["tags"] = model_tags(config, s.entry.flags)
            data.append(entry)
        return json_response({"object": "list", "data": data})

    @app.get("/api/tags")
    async def ollama_tags(request: Request) -> Response:
        pool = _pool(request)
        return json_response({"models": [_ollama_entry(s.name, s.entry.path) for s in pool.listed()]})

    @app.get("/api/ps")
    async def ollama_ps(request: Request) -> Response:
        pool = _pool(request)
        running = [s for s in pool.states.values() if s.serving]
        return json_response({"models": [
            {**_ollama_entry(s.name, s.entry.path), "expires_at": "2262-04-11T23:47:16Z", "size_vram": 0,
             "context_length": (s.info.get("meta") or {}).get("n_ctx", 0)}
            for s in running
        ]})

    @app.post("/models/load")
    async def load(request: Request) -> Response:
        pool = _pool(request)
        name = await _model_name_from_body(request)
        if pool.catalog.resolve(name) is None and not _repo_like(name):
            raise NotFound(f"model '{name}' not found")
        state = pool.add_repo(name)  # a repository id not in the catalog is downloaded first
        error = pool.load_error(state)
        if error is not None:
            raise error
        pool.load(state)  # as llama-server: answered at once; GET /models shows loading, loaded or failed
        return json_response({"success": True})

    @app.post("/models")
    async def download(request: Request) -> Response:
        """llama-server's download route: a Hugging Face model into the cache, listed once it is there."""
        pool = _pool(request)
        name = await _model_name_from_body(request)
        if pool.catalog.resolve(name) is not None:
            raise InvalidRequest(f"model '{name}' already exists")
        state = pool.add_repo(name)
        pool.download(state)
        return json_response({"success": True})

    @app.delete("/models")
    async def delete(request: Request) -> Response:
        """Remove a cache model's files (llama-server's DELETE /models?model=<user>/<repo>:<quant>)."""
        pool = _pool(request)
        name = request.query_params.get("model") or ""
        if not name:
            raise InvalidRequest("model must be a non-empty string")
        await pool.remove(pool.state(name))
        return json_response({"success": True})

    @app.post("/models/unload")
    async def unload(request: Request) -> Response:
        pool = _pool(request)
        state = pool.state(await _model_name_from_body(request))
        error = pool.unload_error(state)
        if error is not None:
            raise error
        await pool.unload(state)
        return json_response({"success": True})

    @app.get("/props")
    async def props(request: Request) -> Response:
        if request.query_params.get("model"):
            return await proxy(request)
        router_props = {
            "role": "router",
            "max_instances": config.models_max,
            "models_autoload": config.models_autoload,
            "default_model": catalog.default,
            "ui_settings": config.ui_config,
            "cors_proxy_enabled": config.ui_mcp_proxy,
            "ignored_options": ignored_options(config),
        }
        pool = _pool(request)
        default = pool.states.get(catalog.default)
        autoload = _flag(request.query_params.get("autoload"), config.models_autoload)
        if default is None or not (default.serving or autoload):
            # llama-server's answer, with the fields single-model clients read first
            return json_response({**router_props, "model_alias": "llamaserve", "model_path": "none",
                                  "default_generation_settings": {"params": {}, "n_ctx": 0},
                                  "build_info": llamaserve.build_info()})
        # A request without a model is for the default model: its props, plus what says "router".
        state = await pool.acquire(default.name, autoload)
        try:
            r = await pool.client.get(child_url(state) + "/props", headers=upstream_headers(request.scope))
        except httpx.HTTPError as exc:
            raise unreachable(state.name, exc) from None
        finally:
            pool.release(state)
        if r.status_code != 200:
            return Response(r.content, status_code=r.status_code, media_type=r.headers.get("content-type"))
        return json_response({**r.json(), **router_props})

    app.include_router(streams.router)  # before the catch-all below
    app.include_router(cors_proxy.router)  # the router's own: it needs no model

    @app.api_route("/{path:path}", methods=_METHODS)
    async def proxy(request: Request) -> Any:
        pool = _pool(request)
        body = await request.body()
        name = requested_model(request, _json_body(request, body))
        autoload = _flag(request.query_params.get("autoload"), config.models_autoload)
        # A conversation's model is remembered before the load wait, so that a stop (DELETE /v1/stream)
        # arriving while the model loads cancels this request rather than leave a generation nobody wants.
        cid = conversation_id(request.scope) if request.method == "POST" else ""
        ticket = owners.remember(cid, pool.state(name).name) if cid else 0
        # a request of a conversation waits for its model even if its client leaves: the session holds the
        # generation for the client's return (GET /v1/stream); any other is given up when its client leaves
        state = await (pool.acquire(name, autoload) if cid else _acquire_while_connected(request, pool, name, autoload))
        if state is None:
            return Response(status_code=499)  # the client left while the model was loading: nobody to answer
        if ticket and not owners.alive(cid, ticket):
            pool.release(state)
            raise InvalidRequest("request cancelled by a stop while the model was loading")
        response = await forward(pool.client, child_url(state), request.scope, body, state.name, lambda: pool.release(state))
        log.info("%s %s -> %s %d", request.method, request.url.path, state.name, response.upstream.status_code)
        return response

    add_shared_layers(app, config)
    return app
