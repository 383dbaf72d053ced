"""Vertex AI (Google Cloud) custom-container prediction: POST {"instances": [...]} on AIP_PREDICT_ROUTE.

With AIP_MODE=PREDICTION (cli/parse.py reads the AIP_* variables into Config) each instance names the
route it is for in "@requestFormat", as a camelCase alias ("chatCompletions" for /v1/chat/completions,
"applyTemplate" for /apply-template) or as the path itself, and carries that route's body. The
instances run concurrently through this same app, as requests of their own (authentication, limits,
the sleep gate and the request log apply to each), and their answers come back in order as
{"predictions": [...]}: a route's error is that instance's prediction, the request still succeeds.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.routing import Route

from llamaserve.api.errors import error_body
from llamaserve.api.prefix import normalize
from llamaserve.api.sse import json_response
from llamaserve.config import Config
from llamaserve.errors import InvalidRequest, ServerError

MAX_INSTANCES = 128  # as llama-server: one request may not occupy the server without bound


def format_alias(path: str) -> str:
    """The camelCase @requestFormat of a route path: /v1/chat/completions -> chatCompletions; a path
    parameter ({id_slot}) and what follows it are left out."""
    if path.startswith("/v1"):
        path = path[3:]
    out, cap = [], False
    for ch in path.lstrip("/").split("{", 1)[0]:
        if ch in "/-_":
            cap = True
        else:
            out.append(ch.upper() if cap else ch)
            cap = False
    return "".join(out)


def flat_routes(routes) -> list:
    """The routes themselves, also those of included routers (FastAPI keeps an included router as one
    entry; the routers here are included without a prefix)."""
    out = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        out.extend(flat_routes(inner.routes) if inner is not None else [route])
    return out


def format_paths(routes) -> dict[str, str]:
    """@requestFormat -> route path, for the routes that take POST: each path under its camelCase alias
    (the first route wins a shared one: /chat/completions and /v1/chat/completions are one handler
    anyway) and under itself."""
    aliases: dict[str, str] = {}
    paths = [r.path for r in routes if isinstance(r, Route) and "POST" in (r.methods or ()) and "{" not in r.path]
    for path in paths:
        aliases.setdefault(format_alias(path), path)
    for path in paths:
        aliases.setdefault(path, path)
    return aliases


def parse_instances(body: bytes) -> list[Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"invalid JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object")
    instances = data.get("instances")
    if not isinstance(instances, list):
        raise InvalidRequest("request body must include an array field named instances")
    if len(instances) > MAX_INSTANCES:
        raise InvalidRequest(f"instances array exceeds maximum size of {MAX_INSTANCES}")
    return instances


def install(app: FastAPI, config: Config) -> None:
    """Add the predict route (and the health alias, AIP_HEALTH_ROUTE) once every other route is there.
    Raises ValueError when the predict route is one of llama-server's own paths."""
    routes = flat_routes(app.routes)
    if config.predict_route in {getattr(r, "path", None) for r in routes}:
        raise ValueError(f"AIP_PREDICT_ROUTE={config.predict_route} conflicts with an existing route")
    aliases = format_paths(routes)
    if config.predict_health_route:
        health = next(r for r in routes if getattr(r, "path", None) == "/health")
        app.add_api_route(config.predict_health_route, health.endpoint, methods=["GET"], include_in_schema=False)

    async def predict(request: Request) -> Response:
        instances = parse_instances(await request.body())
        gone = asyncio.Event()
        watcher = asyncio.ensure_future(_watch_disconnect(request, gone))
        try:
            predictions = await asyncio.gather(*(
                _predict_one(request, aliases, instance, gone) for instance in instances))
        finally:
            watcher.cancel()
        return json_response({"predictions": predictions})

    app.add_api_route(config.predict_route, predict, methods=["POST"], include_in_schema=False)


async def _watch_disconnect(request: Request, gone: asyncio.Event) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
    gone.set()


def _instance_error(message: str, exc_type: type[ServerError] = InvalidRequest) -> dict[str, Any]:
    return error_body(exc_type(message))


async def _predict_one(request: Request, aliases: dict[str, str], instance: Any, gone: asyncio.Event) -> Any:
    if not isinstance(instance, dict):
        return _instance_error("each instance must be a JSON object")
    fmt = instance.get("@requestFormat")
    if not isinstance(fmt, str):
        return _instance_error("each instance must include a string @requestFormat")
    path = aliases.get(fmt)
    if path is None:
        return _instance_error(f"no handler registered for @requestFormat: {fmt}")
    payload = {k: v for k, v in instance.items() if k != "@requestFormat"}
    if "stream" in payload:
        payload["stream"] = False  # one JSON answer per instance: the predict protocol has no streams
    try:
        status, content_type, body = await _call(request, path, orjson.dumps(payload), gone)
    except Exception as exc:  # noqa: BLE001 - this instance's answer; the others go on
        return _instance_error(f"internal error: {type(exc).__name__}: {exc}", ServerError)
    if content_type.startswith("text/event-stream"):
        return _instance_error("predict route does not support streaming responses")
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")


async def _call(request: Request, path: str, body: bytes, gone: asyncio.Event) -> tuple[int, str, bytes]:
    """One POST through the whole app (its middleware included), as if the client had sent it, with the
    client's own headers (its API key) and this body."""
    outer = request.scope
    full = normalize(request.app.state.config.api_prefix) + path  # the app's outermost layers take it off again
    headers = [(k, v) for k, v in outer["headers"] if k not in (b"content-length", b"content-type", b"transfer-encoding")]
    headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope = {key: outer[key] for key in ("type", "asgi", "http_version", "scheme", "server", "client", "root_path", "app", "state", "extensions")
             if key in outer}
    scope.update(method="POST", path=full, raw_path=full.encode(), headers=headers, query_string=b"")
    sent = [False]

    async def receive():
        if not sent[0]:
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    status, content_type, chunks = [500], [""], []

    async def send(message):
        if message["type"] == "http.response.start":
            status[0] = message["status"]
            for k, v in message.get("headers", []):
                if k.lower() == b"content-type":
                    content_type[0] = v.decode("latin-1")
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await request.app(scope, receive, send)
    return status[0], content_type[0], b"".join(chunks)
