"""OpenAI-compatible routes: /v1/chat/completions, /v1/completions, and /apply-template."""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from typing import Any, AsyncIterator

from fastapi import APIRouter, Request
from starlette.responses import Response

from llamaserve.api.bridge import ClientGone, EngineBridge
from llamaserve.api.chat_format import formatter
from llamaserve.api.errors import as_server_error, error_body
from llamaserve.api.native import check_grammar, note_results, read_json, stream_results
from llamaserve.api.openapi import json_body
from llamaserve.api.sse import json_response, sse_data, sse_response
from llamaserve.config import Config
from llamaserve.engine import Result, Task
from llamaserve.protocol import openai

router = APIRouter()
log = logging.getLogger("llamaserve.chat")

try:
    FINGERPRINT = "llamaserve-" + version("llamaserve")
except PackageNotFoundError:  # running from a source tree
    FINGERPRINT = "llamaserve"

DONE = b"data: [DONE]\n\n"


def _tokenizer(model):
    def tokenize(text: str, add_special: bool) -> list[int]:
        return model.tokenize(text, add_special=add_special, parse_special=True)

    return tokenize


def chat_setup(request: Request) -> openai.ChatSetup:
    state = request.app.state
    setup = getattr(state, "chat_setup", None)
    if setup is None:
        config: Config = state.config
        fmt = formatter(request)
        setup = state.chat_setup = openai.ChatSetup(
            render=fmt.render, format=fmt.format, caps=fmt.caps, prefill_assistant=config.prefill_assistant,
            template_kwargs=config.chat_template_kwargs, reasoning_format=config.reasoning_format,
            max_n=config.slots, model_alias=config.model_alias,
            report=lambda problem: log.warning("tool call left in content: %s", problem),
            reasoning_budget=config.reasoning_budget, reasoning_budget_message=config.reasoning_budget_message,
            reasoning_effort=config.reasoning_effort, reasoning_preserve=config.reasoning_preserve,
            skip_chat_parsing=config.skip_chat_parsing, verbose=config.verbose,
        )
    return setup


def _plan_chat(request: Request, body: Any, allow_empty: bool = False) -> openai.Plan:
    return openai.plan_chat(body, chat_setup(request), request.app.state.config.system_prompt, allow_empty)


@router.post("/apply-template", openapi_extra=json_body(openai.ChatCompletionRequest))
async def apply_template(request: Request) -> Response:
    plan = _plan_chat(request, await read_json(request))
    return json_response({"prompt": plan.prompt_text})


def prepare_chat(request: Request, body: Any, allow_empty: bool = False) -> tuple[openai.Plan, list[Task]]:
    """A chat request (OpenAI-shaped body) as a plan and the engine tasks that carry it out."""
    config: Config = request.app.state.config
    model = request.app.state.bridge.model
    plan = _plan_chat(request, body, allow_empty)
    tokenize = _tokenizer(model)
    prompt = openai.native.tokenize_prompts(plan.prompt_text, tokenize, model.n_vocab)
    tasks = openai.build_tasks(plan, prompt, config.sampling, tokenize, model.n_vocab, config.cache_reuse)
    # refusals (e.g. 501 on an embedding-only server) keep their status, even when the caller streams
    request.app.state.bridge.check(tasks)
    check_grammar(model, tasks)
    special = formatter(request).special_pieces
    if special:
        for t in tasks:
            t.special_pieces = special
    return plan, tasks


@router.post("/v1/chat/completions", openapi_extra=json_body(openai.ChatCompletionRequest))
@router.post("/chat/completions", openapi_extra=json_body(openai.ChatCompletionRequest))
async def chat_completions(request: Request) -> Response:
    bridge: EngineBridge = request.app.state.bridge
    plan, tasks = prepare_chat(request, await read_json(request))
    env = openai.Envelope(openai.new_id("chatcmpl-"), plan.model, FINGERPRINT)
    if plan.stream:
        return sse_response(_chat_stream(request, bridge, tasks, openai.ChatChunks(env, plan)))
    finals = await collect(request, bridge, tasks)
    if finals is None:
        return Response(status_code=499)
    return json_response(openai.chat_response(env, finals, plan))


async def _chat_stream(request: Request, bridge: EngineBridge, tasks: list[Task], chunks: openai.ChatChunks) -> AsyncIterator[bytes]:
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
    model = bridge.model
    plan = openai.plan_completions(await read_json(request), max_n=config.slots, model_alias=config.model_alias,
                                   verbose=config.verbose)
    tokenize = _tokenizer(model)
    prompts = openai.native.tokenize_prompts(plan.native.prompt, tokenize, model.n_vocab)
    tasks = openai.build_tasks(plan, prompts, config.sampling, tokenize, model.n_vocab, config.cache_reuse)
    bridge.check(tasks)  # refusals (e.g. 501 on an embedding-only server) keep their status, even when streaming
    check_grammar(model, tasks)
    texts = [model.detokenize(p, special=True) for p in prompts] if plan.echo or plan.verbose else []
    env = openai.Envelope(openai.new_id("cmpl-"), plan.model, FINGERPRINT)
    if plan.stream:
        return sse_response(_completions_stream(request, bridge, tasks, openai.CompletionChunks(env, plan, texts)))
    finals = await collect(request, bridge, tasks)
    if finals is None:
        return Response(status_code=499)
    return json_response(openai.completions_response(env, finals, plan, texts))


async def _completions_stream(request: Request, bridge: EngineBridge, tasks: list[Task], chunks: openai.CompletionChunks) -> AsyncIterator[bytes]:
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


async def collect(request: Request, bridge: EngineBridge, tasks: list[Task]) -> list[Result] | None:
    """Final results in index order, or None when the client went away."""
    try:
        finals = await bridge.collect(request, tasks)
    except ClientGone:
        return None
    note_results(request, finals)
    return finals
