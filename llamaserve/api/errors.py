"""One place that turns errors into llama-server's envelope {"error": {code, message, type}}."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from llamaserve.errors import InvalidRequest, NotFound, ServerError

log = logging.getLogger("llamaserve.api")


def error_body(exc: ServerError) -> dict[str, Any]:
    return {"error": {"code": exc.status, "message": exc.message, "type": exc.type, **exc.extra}}


# Route prefixes whose clients expect Anthropic's envelope {"type": "error", "error": {"type", "message"}}.
ANTHROPIC_PREFIXES = ("/v1/messages",)


def error_response(exc: ServerError, path: str = "") -> Response:
    if path.startswith("/api/"):  # Ollama's clients read {"error": "message"}
        body = {"error": exc.message}
    elif path.startswith(ANTHROPIC_PREFIXES):
        body = {"type": "error", "error": {"type": ANTHROPIC_ERROR_TYPES.get(exc.status, "api_error"), "message": exc.message}}
    else:
        body = error_body(exc)
    return Response(orjson.dumps(body), status_code=exc.status, media_type="application/json")


ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    413: "request_too_large", 429: "rate_limit_error", 503: "overloaded_error",
}


def as_server_error(exc: BaseException) -> ServerError:
    if isinstance(exc, ServerError):
        return exc
    log.exception("unexpected error", exc_info=exc)
    return ServerError(f"internal error: {type(exc).__name__}: {exc}")


def install(app: FastAPI) -> None:
    @app.exception_handler(ServerError)
    async def _server_error(request: Request, exc: ServerError) -> Response:
        return error_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = ".".join(str(x) for x in first["loc"] if x != "body")
        return error_response(InvalidRequest(f"Invalid request: '{loc}': {first['msg']}"), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return error_response(NotFound("File Not Found"), request.url.path)
        if exc.status_code == 405:
            err = NotFound(f"method {request.method} not allowed on {request.url.path}")
            err.status = 405
            return error_response(err, request.url.path)
        err = ServerError(str(exc.detail))
        err.status = exc.status_code
        return error_response(err, request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        return error_response(as_server_error(exc), request.url.path)
