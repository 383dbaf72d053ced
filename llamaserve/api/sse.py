"""Server-sent events framing and JSON encoding shared by all API families."""

from __future__ import annotations

from typing import Any, AsyncIterator

import orjson
from starlette.responses import Response, StreamingResponse

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


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


def sse_response(events: AsyncIterator[bytes]) -> StreamingResponse:
    return FirstChunkFirst(events, media_type="text/event-stream", headers=SSE_HEADERS)
