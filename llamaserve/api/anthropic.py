"""Anthropic Messages routes: /v1/messages and /v1/messages/count_tokens."""

from __future__ import annotations

from typing import AsyncIterator

from fastapi import APIRouter, Request
from starlette.responses import Response

from llamaserve.api.bridge import EngineBridge
from llamaserve.api.errors import ANTHROPIC_ERROR_TYPES, as_server_error
from llamaserve.api.media_fetch import read_chat_json
from llamaserve.api.openapi import json_body
from llamaserve.api.requests import collect, stream_results
from llamaserve.api.sse import json_response, sse_event, sse_response
from llamaserve.engine import Task
from llamaserve.protocol import anthropic, openai

router = APIRouter()


@router.post("/v1/messages", openapi_extra=json_body(anthropic.MessagesRequest))
async def messages(request: Request) -> Response:
    bridge: EngineBridge = request.app.state.bridge
    plan, tasks = anthropic.chat_tasks(await read_chat_json(request), bridge.chat_server)
    bridge.check(tasks)  # refusals (e.g. 501 on an embedding-only server) keep their status, even when streaming
    msg_id = openai.new_id("msg_")
    if plan.stream:
        events = anthropic.MessageEvents(msg_id, plan.model, len(tasks[0].prompt))
        return sse_response(_stream(request, tasks, plan, events))
    finals = await collect(request, tasks)
    if finals is None:
        return Response(status_code=499)
    r = finals[0]
    return json_response(anthropic.message_json(msg_id, plan.model, r, openai.parse_message(plan, r.text)))


async def _stream(request: Request, tasks: list[Task], plan: openai.Plan,
                  events: anthropic.MessageEvents) -> AsyncIterator[bytes]:
    results = await stream_results(request, tasks, [])  # a refusal or a first error raises here, before any event
    for name, data in events.start():
        yield sse_event(name, data)
    output = plan.output()
    async for r in results:
        if r.error is not None:
            err = as_server_error(r.error)
            body = {"type": "error", "error": {"type": ANTHROPIC_ERROR_TYPES.get(err.status, "api_error"), "message": err.message}}
            yield sse_event("error", body)
            return
        out = events.deltas(output.feed(r.text)) if r.text else []
        if r.done:
            tail, message = output.finish()
            out += events.deltas(tail) + events.finish(r, message)
        for name, data in out:
            yield sse_event(name, data)


@router.post("/v1/messages/count_tokens", openapi_extra=json_body(anthropic.CountTokensRequest))
async def count_tokens(request: Request) -> Response:
    bridge: EngineBridge = request.app.state.bridge
    _, tasks = anthropic.chat_tasks(await read_chat_json(request), bridge.chat_server, count_only=True)
    bridge.check(tasks)
    return json_response({"input_tokens": len(tasks[0].prompt)})
