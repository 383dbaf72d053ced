"""Resumable streams, as llama-server's: a streamed POST carrying X-Conversation-Id runs to its end whatever its
client does, its SSE bytes kept in a session (api/stream_sessions.py); GET /v1/stream replays them from a byte
offset and follows the rest live, DELETE /v1/stream stops the generation, POST /v1/streams/lookup says how far
sessions the caller names have got."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response, StreamingResponse

from llamaserve.api.openapi import json_body
from llamaserve.api.requests import read_json
from llamaserve.api.sse import SSE_HEADERS, json_response
from llamaserve.api.stream_sessions import StreamSession, StreamSessions
from llamaserve.errors import InvalidRequest, NotFound
from llamaserve.protocol.native import parse_model

CONVERSATION_HEADER = b"x-conversation-id"

router = APIRouter()


def conversation_id(scope) -> str:
    """The request's X-Conversation-Id, "" without one. UTF-8, as the conv_id query parameter that names
    it again is read."""
    for key, value in scope["headers"]:
        if key.lower() == CONVERSATION_HEADER:
            return value.decode("utf-8", "replace")
    return ""


def conversation_param(request: Request) -> str:
    # a query parameter, not a path segment: the id may hold a model name with slashes (org/repo:quant)
    cid = request.query_params.get("conv_id", "")
    if not cid:
        raise InvalidRequest("Missing conversation id in path")
    return cid


class StreamLookupRequest(BaseModel):
    """POST /v1/streams/lookup: the conversations whose sessions the caller asks about."""

    model_config = ConfigDict(extra="allow")
    conversation_ids: list[str] = []


def requested_ids(body: Any) -> list[str]:
    """The ids of a decoded lookup body (InvalidRequest for one that is not the request's shape)."""
    return [cid for cid in parse_model(StreamLookupRequest, body).conversation_ids if cid]


class ResumableStreams:
    """Pure ASGI middleware: a POST with X-Conversation-Id opens a session, and its request runs detached from
    the client. The route reads a receive that reports the client gone only on a stop, and writes through a
    send that copies an SSE answer into the session and reaches the client while it is there. An answer that
    is not a 200 event stream (an error, a non-streamed reply) leaves no session behind."""

    def __init__(self, app, sessions: StreamSessions):
        self.app = app
        self.sessions = sessions

    async def __call__(self, scope, receive, send):
        cid = conversation_id(scope) if scope["type"] == "http" and scope["method"] == "POST" else ""
        if not cid:
            return await self.app(scope, receive, send)
        run = asyncio.ensure_future(self._produce(self.sessions.open(cid), scope, receive, send))
        # An ASGI server that cancels the request when its client leaves must not stop the generation.
        run.add_done_callback(lambda t: t.cancelled() or t.exception())
        await asyncio.shield(run)

    async def _produce(self, session: StreamSession, scope, receive, send) -> None:
        body_read = False
        streaming = False
        client_here = True

        async def detached_receive() -> dict[str, Any]:
            nonlocal body_read
            if not body_read:
                message = await receive()
                body_read = message["type"] != "http.request" or not message.get("more_body", False)
                return message
            await session.cancelled.wait()
            return {"type": "http.disconnect"}

        async def tee_send(message) -> None:
            nonlocal streaming, client_here
            if message["type"] == "http.response.start":
                content_type = dict(message.get("headers") or []).get(b"content-type", b"")
                streaming = message["status"] == 200 and content_type.startswith(b"text/event-stream")
                if not streaming:
                    self.sessions.discard(session)
            elif message["type"] == "http.response.body" and streaming:
                session.append(message.get("body", b""))
            if client_here:
                try:
                    await send(message)
                except OSError:
                    client_here = False  # the session takes the rest

        try:
            await self.app(scope, detached_receive, tee_send)
        finally:
            if not streaming:
                self.sessions.discard(session)
            session.finish()


def _sessions(request: Request) -> StreamSessions:
    return request.app.state.stream_sessions


@router.get("/v1/stream")
async def resume(request: Request) -> Response:
    session = _sessions(request).get(conversation_param(request))
    if session is None:
        raise NotFound("Stream not found or expired")
    raw = request.query_params.get("from", "")
    if raw and not raw.isdigit():
        raise InvalidRequest("Invalid 'from' offset")
    offset = int(raw or 0)
    if offset < session.dropped:
        raise InvalidRequest("Stream offset lost, please restart")
    return StreamingResponse(session.read_from(offset), media_type="text/event-stream", headers=SSE_HEADERS)


@router.delete("/v1/stream")
async def stop(request: Request) -> Response:
    # idempotent, as llama-server's: an unknown or finished id is stopped already
    _sessions(request).stop(conversation_param(request))
    return Response(status_code=204)


@router.post("/v1/streams/lookup", openapi_extra=json_body(StreamLookupRequest))
async def lookup(request: Request) -> Response:
    # only the ids asked about: live sessions cannot be listed by someone who does not know their ids
    sessions = _sessions(request).matching(requested_ids(await read_json(request)))
    return json_response([
        {"conversation_id": s.conversation_id, "is_done": s.done, "total_bytes": s.total,
         "started_at": int(s.started_at), "completed_at": int(s.completed_at)}
        for s in sessions
    ])
