"""Ollama-compatible routes under /api/: chat, generate, tags, show, ps, version."""

from __future__ import annotations

import logging
import time
from typing import Any, AsyncIterator

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from llamaserve.api.bridge import EngineBridge
from llamaserve.api.errors import as_server_error
from llamaserve.api.openapi import JsonObject, json_body
from llamaserve.api.requests import collect, note, read_json_object, stream_results
from llamaserve.api.sse import FirstChunkFirst, json_response
from llamaserve.config import Config
from llamaserve.engine import Result, Task
from llamaserve.errors import InvalidRequest, NotSupported
from llamaserve.protocol import embeddings, ollama, openai

router = APIRouter()
log = logging.getLogger("llamaserve.ollama")

NDJSON = "application/x-ndjson"


def _line(obj: Any) -> bytes:
    return orjson.dumps(obj) + b"\n"


def _config(request: Request) -> Config:
    return request.app.state.config


def _details(request: Request) -> dict[str, Any]:
    info = request.app.state.bridge.model.info
    return ollama.details(info.desc, info.n_params)


@router.get("/api/version")
async def version(request: Request) -> Response:
    return json_response({"version": ollama.VERSION})


@router.get("/api/tags")
async def tags(request: Request) -> Response:
    bridge: EngineBridge = request.app.state.bridge
    if not bridge.scheduler.ready.is_set():
        return json_response({"models": []})
    info = bridge.model.info
    return json_response({"models": [ollama.model_entry(_config(request).model_alias, info.size, _details(request))]})


@router.get("/api/ps")
async def ps(request: Request) -> Response:
    model = request.app.state.bridge.model
    entry = ollama.model_entry(_config(request).model_alias, model.info.size, _details(request))
    entry.update({"expires_at": "2262-04-11T23:47:16Z", "size_vram": 0, "context_length": model.n_ctx_slot})
    return json_response({"models": [entry]})


@router.post("/api/show", openapi_extra=json_body(JsonObject))
async def show(request: Request) -> Response:
    await read_json_object(request)  # any name: a single-model server answers for its model, as /api/chat does
    bridge: EngineBridge = request.app.state.bridge
    info = bridge.model.info
    renderer = bridge.renderer
    return json_response({
        "modelfile": f"FROM {info.path}\n",
        "parameters": "",
        "template": renderer.source,
        "details": _details(request),
        "model_info": {
            "general.architecture": _details(request)["family"],
            "general.parameter_count": info.n_params,
            "general.context_length": info.n_ctx_train,
            "general.embedding_length": info.n_embd,
            "tokenizer.vocab_size": info.n_vocab,
        },
        "capabilities": ["completion"],
        "modified_at": ollama.now_iso(),
    })


@router.post("/api/chat", openapi_extra=json_body(ollama.ChatRequest))
async def chat(request: Request) -> Response:
    t0 = time.perf_counter()
    body = await read_json_object(request)
    bridge: EngineBridge = request.app.state.bridge
    n_ctx = bridge.model.n_ctx_slot  # 503 while loading, before the body is validated
    req, plan, tasks = ollama.chat_tasks(body, n_ctx, bridge.chat_server, lambda notes: _log_notes(request, notes))
    bridge.check(tasks)  # refusals (e.g. 501 on an embedding-only server) keep their status, even when streaming
    name = req.model or _config(request).model_alias
    if req.stream:
        return _ndjson(_chat_stream(request, tasks, plan, name, t0))
    finals = await collect(request, tasks)
    if finals is None:
        return Response(status_code=499)
    r = finals[0]
    message = ollama.chat_message(openai.parse_message(plan, r.text))
    extra = _logprobs(plan, r.probs)
    return json_response(ollama.chat_chunk(name, message, True, done_reason=ollama.done_reason(r), **ollama.stats(r, t0), **extra))


async def _chat_stream(request: Request, tasks: list[Task], plan: openai.Plan, name: str, t0: float) -> AsyncIterator[bytes]:
    output = plan.output()
    async for r, deltas, whole in _deltas(request, tasks, output):
        if isinstance(r, bytes):
            yield r
            return
        text = "".join(d.get("content") or "" for d in deltas)
        thinking = "".join(d.get("reasoning_content") or "" for d in deltas)
        if text or thinking or (r.probs and plan.logprobs is not None):
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if thinking:
                message["thinking"] = thinking
            yield _line(ollama.chat_chunk(name, message, **_logprobs(plan, r.probs)))
        if whole is not None:
            message = {"role": "assistant", "content": ""}
            if whole.get("tool_calls"):
                message["tool_calls"] = ollama.chat_message(whole)["tool_calls"]
            yield _line(ollama.chat_chunk(name, message, True, done_reason=ollama.done_reason(r), **ollama.stats(r, t0)))


@router.post("/api/generate", openapi_extra=json_body(ollama.GenerateRequest))
async def generate(request: Request) -> Response:
    t0 = time.perf_counter()
    body = await read_json_object(request)
    bridge: EngineBridge = request.app.state.bridge
    model = bridge.model
    req, plan, tasks = ollama.generate_tasks(body, model.n_ctx_slot, bridge.tokenizer, bridge.task_defaults(),
                                             lambda: bridge.chat, lambda notes: _log_notes(request, notes))
    name = req.model or _config(request).model_alias
    bridge.check(tasks)  # e.g. 501 on an embedding-only server, before the stream starts
    if not req.stream:
        if not req.prompt and not req.context:  # Ollama: an empty prompt only loads the model
            return json_response(ollama.generate_chunk(name, "", done=True, done_reason="load"))
        finals = await collect(request, tasks)
        if finals is None:
            return Response(status_code=499)
        r = finals[0]
        message = openai.parse_message(plan, r.text)
        return json_response(ollama.generate_chunk(
            name, message["content"], message["reasoning_content"], True, done_reason=ollama.done_reason(r),
            context=r.task.prompt + r.tokens, **ollama.stats(r, t0), **_logprobs(plan, r.probs),
        ))
    return _ndjson(_generate_stream(request, tasks, plan, name, t0))


async def _generate_stream(request: Request, tasks: list[Task], plan: openai.Plan, name: str, t0: float) -> AsyncIterator[bytes]:
    output = plan.output()
    generated: list[int] = []
    async for r, deltas, _ in _deltas(request, tasks, output):
        if isinstance(r, bytes):
            yield r
            return
        generated += r.tokens
        text = "".join(d.get("content") or "" for d in deltas)
        thinking = "".join(d.get("reasoning_content") or "" for d in deltas)
        if text or thinking:
            yield _line(ollama.generate_chunk(name, text, thinking, **_logprobs(plan, r.probs)))
        if r.done:
            yield _line(ollama.generate_chunk(name, "", done=True, done_reason=ollama.done_reason(r),
                                              context=r.task.prompt + generated, **ollama.stats(r, t0)))


async def _deltas(request: Request, tasks: list[Task], output) -> AsyncIterator[tuple[Result | bytes, list[dict], dict | None]]:
    """Each Result with the message deltas its text makes and, on the last, the whole message;
    an error line instead when the engine fails."""
    async for r in await stream_results(request, tasks, []):
        if r.error is not None:
            yield _line({"error": as_server_error(r.error).message}), [], None
            return
        deltas = output.feed(r.text) if r.text else []
        whole = None
        if r.done:
            tail, whole = output.finish()
            deltas += tail
        yield r, deltas, whole


def _logprobs(plan: openai.Plan, probs) -> dict[str, Any]:
    if plan.logprobs is None or not probs:
        return {}
    return {"logprobs": ollama.logprobs_json(probs, plan.logprobs)}


def _log_notes(request: Request, notes: list[str]) -> None:
    for n in notes:
        log.info("%s: %s", request.url.path, n)
    if notes:
        note(request, options="partly-applied")


def _ndjson(lines: AsyncIterator[bytes]) -> StreamingResponse:
    return FirstChunkFirst(lines, media_type=NDJSON)


@router.post("/api/embed", openapi_extra=json_body(ollama.EmbedRequest))
async def embed(request: Request) -> Response:
    t0 = time.perf_counter()
    body = await read_json_object(request)
    bridge: EngineBridge = request.app.state.bridge
    config = _config(request)
    model = bridge.model
    if not config.embedding_mode:
        raise NotSupported("This server does not support embeddings. Start it with `--embeddings`")
    if "input" not in body:
        raise InvalidRequest('"input" is required')
    _, notes = ollama.options_fields(body.get("options"), model.n_ctx_slot)
    _log_notes(request, notes)
    fields = {"input": body["input"], **({"dimensions": body["dimensions"]} if "dimensions" in body else {})}
    req = embeddings.parse_embedding_request(fields, model.tokenize, model.n_vocab, model.info.n_embd_out, 2, True)
    results = await collect(request, embeddings.build_embedding_tasks(req))
    if results is None:
        return Response(status_code=499)
    return json_response({
        "model": body.get("model") or config.model_alias,
        "embeddings": [r.embedding[0] for r in results],
        "total_duration": int((time.perf_counter() - t0) * 1e9),
        "load_duration": 0,
        "prompt_eval_count": sum(r.n_prompt for r in results),
    })
