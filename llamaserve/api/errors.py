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


def error_response(exc: ServerError) -> Response:
    return Response(orjson.dumps(error_body(exc)), status_code=exc.status, media_type="application/json")


def as_server_error(exc: BaseException) -> ServerError:
    if isinstance(exc, ServerError):
        return exc
    log.exception("unexpected error", exc_info=exc)
    return ServerError(f"internal error: {type(exc).__name__}: {exc}")


def install(app: FastAPI) -> None:
    @app.exception_handler(ServerError)
    async def _server_error(request: Request, exc: ServerError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = ".".join(str(x) for x in first["loc"] if x != "body")
        return error_response(InvalidRequest(f"Invalid request: '{loc}': {first['msg']}"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return error_response(NotFound("File Not Found"))
        if exc.status_code == 405:
            err = NotFound(f"method {request.method} not allowed on {request.url.path}")
            err.status = 405
            return error_response(err)
        err = ServerError(str(exc.detail))
        err.status = exc.status_code
        return error_response(err)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        return error_response(as_server_error(exc))
