"""Streamed responses send their status with their first chunk: a refusal before any output keeps its status."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.testclient import TestClient

from llamaserve.api import errors
from llamaserve.api.sse import sse_data, sse_response
from llamaserve.errors import Unavailable


def app_with(events) -> TestClient:
    app = FastAPI()
    errors.install(app)

    @app.post("/stream")
    @app.post("/v1/messages")
    async def stream():
        return sse_response(events())

    return TestClient(app)


def test_error_before_the_first_event_gets_its_status():
    async def refused():
        raise Unavailable("server is busy")
        yield b""  # noqa: unreachable - makes this an async generator

    r = app_with(refused).post("/stream")
    assert r.status_code == 503
    assert r.json() == {"error": {"code": 503, "message": "server is busy", "type": "unavailable_error"}}
    # the route's family envelope applies
    r = app_with(refused).post("/v1/messages")
    assert r.status_code == 503 and r.json()["type"] == "error" and r.json()["error"]["type"] == "overloaded_error"


def test_events_stream_as_before():
    async def events():
        for i in range(3):
            yield sse_data({"i": i})

    r = app_with(events).post("/stream")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.text == 'data: {"i":0}\n\ndata: {"i":1}\n\ndata: {"i":2}\n\n'


def test_empty_stream():
    async def nothing():
        return
        yield b""  # noqa: unreachable

    r = app_with(nothing).post("/stream")
    assert r.status_code == 200 and r.text == ""
