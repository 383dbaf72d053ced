"""OpenAI-compatible routes: /v1/chat/completions, /v1/completions, and /apply-template."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any, AsyncIterator

from fastapi import APIRouter, Request
from starlette.responses import Response

from llamaserve.api.bridge import EngineBridge
from llamaserve.api.errors import as_server_error, error_body
from llamaserve.api.media_fetch import read_chat_json
from llamaserve.api.openapi import json_body
from llamaserve.api.requests import collect, read_json, stream_results
from llamaserve.api.sse import json_response, sse_data, sse_response
from llamaserve.config import Config
from llamaserve.engine import Result, Task
from llamaserve.protocol import openai

router = APIRouter()

try:
    FINGERPRINT = "llamaserve-" + version("llamaserve")
except PackageNotFoundError:  # running from a source tree
    FINGERPRINT = "llamaserve"

DONE = b"data: [DONE]\n\n"


def chat_tasks(request: Request, body: Any) -> tuple[openai.Plan, list[Task]]:
    """An OpenAI chat body as a plan and its tasks, checked by the engine (here and for
    /v1/chat/completions/input_tokens). The server's chat side is asked for before the body is validated:
    while loading, any chat completions request is a 503. Refusals (e.g. 501 on an embedding-only server,
    a grammar libllama will not compile) keep their status, even when the caller streams."""
    bridge: EngineBridge = request.app.state.bridge
    server = bridge.chat_server()
    plan, tasks = openai.chat_tasks(body, server.setup, server.tokenizer, server.defaults)
    bridge.check(tasks)
    return plan, tasks


@router.post("/apply-template", openapi_extra=json_body(openai.ChatCompletionRequest))
async def apply_template(request: Request) -> Response:
    bridge: EngineBridge = request.app.state.bridge
    plan = openai.plan_chat(await read_json(request), bridge.chat, request.app.state.config.system_prompt)
    return json_response({"prompt": plan.prompt_text})


@router.post("/v1/chat/completions", openapi_extra=json_body(openai.ChatCompletionRequest))
@router.post("/chat/completions", openapi_extra=json_body(openai.ChatCompletionRequest))
async def chat_completions(request: Request) -> Response:
    plan, tasks = chat_tasks(request, await read_chat_json(request))
    env = openai.Envelope(openai.new_id("chatcmpl-"), plan.model, FINGERPRINT)
    if plan.stream:
        return sse_response(_chat_stream(request, tasks, openai.ChatChunks(env, plan)))
    finals = await collect(request, tasks)
    if finals is None:
        return Response(status_code=499)
    return json_response(openai.chat_response(env, finals, plan))


async def _chat_stream(request: Request, tasks: list[Task], chunks: openai.ChatChunks) -> AsyncIterator[bytes]:
    finals: list[Result] = []
    async for r in await stream_results(request, tasks, finals):
        if r.error is not None:
            yield sse_data(error_body(as_server_error(r.error)))
            return
        for chunk in chunks.chunks(r):
            yield sse_data(chunk)
    if len(finals) < len(tasks):
        return  # the client left
    if chunks.plan.include_usage:
        yield sse_data(chunks.usage(sorted(finals, key=lambda r: r.task.index)))
    yield DONE


@router.post("/v1/completions", openapi_extra=json_body(openai.CompletionsRequest))
async def completions(request: Request) -> Response:
    bridge: EngineBridge = request.app.state.bridge
    config: Config = request.app.state.config
    bridge.model  # 503 while loading, before the body is read
    plan, tasks, texts = openai.completions_tasks(await read_json(request), bridge.tokenizer, bridge.task_defaults(),
                                                  max_n=config.slots, model_alias=config.model_alias, verbose=config.verbose)
    bridge.check(tasks)  # refusals (e.g. 501 on an embedding-only server) keep their status, even when streaming
    env = openai.Envelope(openai.new_id("cmpl-"), plan.model, FINGERPRINT)
    if plan.stream:
        return sse_response(_completions_stream(request, tasks, openai.CompletionChunks(env, plan, texts)))
    finals = await collect(request, tasks)
    if finals is None:
        return Response(status_code=499)
    return json_response(openai.completions_response(env, finals, plan, texts))


async def _completions_stream(request: Request, tasks: list[Task], chunks: openai.CompletionChunks) -> AsyncIterator[bytes]:
    finals: list[Result] = []
    async for r in await stream_results(request, tasks, finals):
        if r.error is not None:
            yield sse_data(error_body(as_server_error(r.error)))
            return
        if r.done:
            yield sse_data(chunks.text(r, openai.finish_reason(r)))
        elif r.text or r.probs or r.progress:
            yield sse_data(chunks.text(r))
    if len(finals) < len(tasks):
        return  # the client left
    if chunks.plan.include_usage:
        yield sse_data(chunks.usage(sorted(finals, key=lambda r: r.task.index)))
    yield DONE
