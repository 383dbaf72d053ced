"""Server-sent events framing and JSON encoding shared by all API families, and the keep-alive
comments of a stream that waits (--sse-ping-interval)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator

import orjson
from starlette.responses import Response, StreamingResponse

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

# What llama-server sends on a stream that has waited --sse-ping-interval seconds for its next event:
# an empty SSE comment, which clients skip, but which keeps idle-timeout proxies and clients (undici's
# body timeout) from dropping a stream whose prompt takes long to read.
PING = b":\n\n"


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type="application/json; charset=utf-8")


def sse_data(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def sse_event(name: str, obj: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


class FirstChunkFirst(StreamingResponse):
    """A streamed response that produces its first chunk before it sends the status line.

    An error raised before any output (a request refused by the limits, a queue that is full)
    then reaches the exception handlers and is answered with its own status and envelope instead
    of a 200 stream that breaks off. llama-server likewise waits for the first result."""

    def __init__(self, content, status_code: int = 200, headers=None, media_type=None, background=None):
        # Tells a buffering reverse proxy (nginx) to pass each chunk on at once, as llama-server does on
        # every stream.
        super().__init__(content, status_code, {"X-Accel-Buffering": "no", **(headers or {})}, media_type, background)

    async def __call__(self, scope, receive, send) -> None:
        body = self.body_iterator
        try:
            first = await body.__anext__()
        except StopAsyncIteration:  # nothing to send (the client left while we waited)
            first = None

        async def chunks():
            if first is not None:
                yield first
            async for chunk in body:
                yield chunk

        self.body_iterator = chunks()
        await super().__call__(scope, receive, send)


class EventStream(FirstChunkFirst):
    """An SSE response that sends PING whenever it has sent nothing for the app's --sse-ping-interval
    seconds (0 = never). Pings start after the first event, as llama-server's: until then there is no
    status line yet (see FirstChunkFirst)."""

    ping_interval: float = 0.0

    async def __call__(self, scope, receive, send) -> None:
        app = scope.get("app")
        config = getattr(getattr(app, "state", None), "config", None)
        self.ping_interval = float(getattr(config, "sse_ping_interval", 0) or 0)
        await super().__call__(scope, receive, send)

    async def stream_response(self, send) -> None:
        interval = self.ping_interval
        if interval <= 0:
            return await super().stream_response(send)
        # The events and the pings share the connection: one send at a time, and none after the last.
        lock = asyncio.Lock()
        last_sent = time.monotonic()
        finished = False

        async def send_one(message) -> None:
            nonlocal last_sent, finished
            async with lock:
                if finished:
                    return
                await send(message)
                last_sent = time.monotonic()
                finished = message["type"] == "http.response.body" and not message.get("more_body", False)

        async def pings() -> None:
            while not finished:
                await asyncio.sleep(max(0.0, last_sent + interval - time.monotonic()))
                if time.monotonic() - last_sent >= interval:
                    await send_one({"type": "http.response.body", "body": PING, "more_body": True})

        pinger = asyncio.ensure_future(pings())
        # A ping that fails has a client that left, which the stream itself notices: nothing to report.
        pinger.add_done_callback(lambda t: t.cancelled() or t.exception())
        try:
            await super().stream_response(send_one)
        finally:
            pinger.cancel()


def sse_response(events: AsyncIterator[bytes]) -> StreamingResponse:
    return EventStream(events, media_type="text/event-stream", headers=SSE_HEADERS)
