"""OpenAI Responses routes (stateless): /v1/responses and the token counters."""

from __future__ import annotations

from typing import AsyncIterator

from fastapi import APIRouter, Request
from starlette.responses import Response

from llamaserve.api.bridge import EngineBridge
from llamaserve.api.errors import as_server_error, error_body
from llamaserve.api.media_fetch import read_chat_json
from llamaserve.api.openapi import json_body
from llamaserve.api.openai import chat_tasks
from llamaserve.api.requests import collect, stream_results
from llamaserve.api.sse import json_response, sse_event, sse_response
from llamaserve.engine import Task
from llamaserve.protocol import openai, responses

router = APIRouter()


@router.post("/v1/responses", openapi_extra=json_body(responses.ResponsesRequest))
@router.post("/responses", openapi_extra=json_body(responses.ResponsesRequest))
async def create_response(request: Request) -> Response:
    bridge: EngineBridge = request.app.state.bridge
    req, plan, tasks = responses.chat_tasks(await read_chat_json(request), bridge.chat_server)
    bridge.check(tasks)  # refusals (e.g. 501 on an embedding-only server) keep their status, even when streaming
    builder = responses.ResponseBuilder(req, plan.model)
    if plan.stream:
        return sse_response(_stream(request, tasks, plan, responses.ResponseEvents(builder)))
    finals = await collect(request, tasks)
    if finals is None:
        return Response(status_code=499)
    r = finals[0]
    return json_response(builder.complete(r, openai.parse_message(plan, r.text)))


async def _stream(request: Request, tasks: list[Task], plan: openai.Plan,
                  events: responses.ResponseEvents) -> AsyncIterator[bytes]:
    results = await stream_results(request, tasks, [])  # a refusal or a first error raises here, before any event
    for e in events.start():
        yield sse_event(e["type"], e)
    output = plan.output()
    async for r in results:
        if r.error is not None:
            err = error_body(as_server_error(r.error))["error"]
            yield sse_event("error", {"type": "error", "sequence_number": events.seq, "code": str(err["code"]),
                                      "message": err["message"], "param": None})
            return
        if r.progress is not None:
            out = events.progress(r)
        else:
            out = events.deltas(output.feed(r.text)) if r.text else []
            if r.done:
                tail, _ = output.finish()
                out += events.deltas(tail) + events.finish(r)
        if out and r.timings is not None:  # as llama-server: on the last event of each result
            out[-1]["timings"] = r.timings.as_dict()
        for e in out:
            yield sse_event(e["type"], e)


@router.post("/v1/responses/input_tokens", openapi_extra=json_body(responses.InputTokensRequest))
@router.post("/responses/input_tokens", openapi_extra=json_body(responses.InputTokensRequest))
async def response_input_tokens(request: Request) -> Response:
    bridge: EngineBridge = request.app.state.bridge
    _, _, tasks = responses.chat_tasks(await read_chat_json(request), bridge.chat_server, count_only=True)
    bridge.check(tasks)
    return json_response({"object": "response.input_tokens", "input_tokens": len(tasks[0].prompt)})


@router.post("/v1/chat/completions/input_tokens", openapi_extra=json_body(openai.ChatCompletionRequest))
@router.post("/chat/completions/input_tokens", openapi_extra=json_body(openai.ChatCompletionRequest))
async def chat_input_tokens(request: Request) -> Response:
    _, tasks = chat_tasks(request, await read_chat_json(request))
    return json_response({"object": "response.input_tokens", "input_tokens": len(tasks[0].prompt)})
