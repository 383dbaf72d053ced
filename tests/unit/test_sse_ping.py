"""--sse-ping-interval on an app of its own: ":\\n\\n" while a stream waits, only after its first event,
never with 0, and never on NDJSON streams."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from starlette.testclient import TestClient

from llamaserve.api import errors
from llamaserve.api.sse import PING, FirstChunkFirst, sse_data, sse_response
from llamaserve.config import Config


def client(interval: int, events, ndjson: bool = False) -> TestClient:
    app = FastAPI()
    app.state.config = Config(sse_ping_interval=interval)
    errors.install(app)

    @app.post("/stream")
    async def stream():
        if ndjson:
            return FirstChunkFirst(events(), media_type="application/x-ndjson")
        return sse_response(events())

    return TestClient(app)


def slow(first_wait: float = 0.0, gap: float = 2.3):
    async def events():
        await asyncio.sleep(first_wait)
        yield sse_data({"i": 0})
        await asyncio.sleep(gap)
        yield sse_data({"i": 1})

    return events


def test_pings_while_waiting_after_the_first_event():
    r = client(1, slow()).post("/stream")
    assert r.status_code == 200
    assert PING == b":\n\n"
    first, rest = r.content.split(b"\n\n", 1)
    assert first == b'data: {"i":0}'
    # 2.3 s of waiting at one ping a second: two pings, then the event
    assert rest == PING * 2 + b'data: {"i":1}\n\n'
    assert r.headers["x-accel-buffering"] == "no"


def test_no_ping_before_the_first_event():
    r = client(1, slow(first_wait=1.6, gap=0)).post("/stream")
    assert r.content == b'data: {"i":0}\n\ndata: {"i":1}\n\n'


def test_zero_means_no_pings():
    r = client(0, slow(gap=1.5)).post("/stream")
    assert r.content == b'data: {"i":0}\n\ndata: {"i":1}\n\n'


def test_ndjson_streams_get_no_pings_but_the_buffering_header():
    async def lines():
        yield b'{"a":1}\n'
        await asyncio.sleep(1.5)
        yield b'{"a":2}\n'

    r = client(1, lambda: lines(), ndjson=True).post("/stream")
    assert r.content == b'{"a":1}\n{"a":2}\n'
    assert r.headers["x-accel-buffering"] == "no"
