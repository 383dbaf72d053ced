"""llama.cpp's native routes: /completion, /tokenize, /detokenize, /props, /slots, /models, /health."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any, AsyncIterator

from fastapi import APIRouter, Request
from starlette.responses import Response

import llamaserve
from llamaserve.api.bridge import EngineBridge
from llamaserve.api.errors import as_server_error, error_body
from llamaserve.api.openapi import json_body
from llamaserve.api.requests import collect, read_json, stream_results
from llamaserve.api.sse import json_response, sse_data, sse_response
from llamaserve.config import SPEC_TYPES_NOT_BUILT, Config
from llamaserve.engine import SpecParams, Task
from llamaserve.errors import InvalidRequest, NotSupported, ServerError, Unavailable
from llamaserve.protocol import native
from llamaserve.protocol.slots import slot_json

router = APIRouter()


def _bridge(request: Request) -> EngineBridge:
    return request.app.state.bridge


def _config(request: Request) -> Config:
    return request.app.state.config


@router.get("/health")
@router.get("/v1/health")
async def health(request: Request) -> Response:
    try:
        _bridge(request).model  # raises 503 while loading
    except Unavailable as exc:
        download = request.app.state.download
        figures = download.snapshot() if download is not None else {}
        if figures and not _bridge(request).scheduler.ready.is_set():
            raise Unavailable(exc.message, download=figures) from None  # the model is still arriving
        raise
    return json_response({"status": "ok"})


@router.post("/completion", openapi_extra=json_body(native.CompletionRequest))
@router.post("/completions", openapi_extra=json_body(native.CompletionRequest))
async def completion(request: Request) -> Response:
    _bridge(request).model  # 503 while loading, before the body is read
    return await complete(request, native.parse_request(await read_json(request)))


async def complete(request: Request, req: native.CompletionRequest) -> Response:
    """Run a parsed native completion request (also /infill's, with its FIM prompt as tokens)."""
    bridge = _bridge(request)
    tokenizer = bridge.tokenizer
    tasks = native.completion_tasks(req, tokenizer, bridge.task_defaults())
    bridge.check(tasks)  # refusals (e.g. 501 on an embedding-only server) keep their status, even when streaming
    alias = _config(request).model_alias
    if req.stream:
        return sse_response(_stream(request, tokenizer, tasks, req, alias))
    finals = await collect(request, tasks)
    if finals is None:
        return Response(status_code=499)
    out = [
        native.final_json(r, alias, tokenizer.detokenize(r.task.prompt, special=True), req.return_tokens, req.response_fields)
        for r in finals
    ]
    return json_response(out[0] if len(out) == 1 else out)


async def _stream(request: Request, tokenizer, tasks: list[Task], req, alias: str) -> AsyncIterator[bytes]:
    async for r in await stream_results(request, tasks, []):
        if r.error is not None:
            yield sse_data(error_body(as_server_error(r.error)))
        elif r.done:
            if r.text or r.probs:
                yield sse_data(native.partial_json(r, True))
                r.text, r.probs = "", []
            yield sse_data(native.final_json(r, alias, tokenizer.detokenize(r.task.prompt, special=True), False, req.response_fields))
        else:
            yield sse_data(native.partial_json(r, True))


# --- tokenizer ---

@router.post("/tokenize", openapi_extra=json_body(native.TokenizeRequest))
async def tokenize(request: Request) -> Response:
    model = _bridge(request).model
    req = native.parse_model(native.TokenizeRequest, await read_json(request))

    tokens = native.tokenize_content(req, model)
    if not req.with_pieces:
        return json_response({"tokens": tokens})
    out = []
    for t in tokens:
        piece = model.piece(t, special=True) if model.valid_token(t) else b""
        try:
            out.append({"id": t, "piece": piece.decode("utf-8")})
        except UnicodeDecodeError:
            out.append({"id": t, "piece": list(piece)})
    return json_response({"tokens": out})


@router.post("/detokenize", openapi_extra=json_body(native.DetokenizeRequest))
async def detokenize(request: Request) -> Response:
    model = _bridge(request).model
    tokens = native.parse_model(native.DetokenizeRequest, await read_json(request)).tokens
    bad = [t for t in tokens if not model.valid_token(t)]
    if bad:
        raise InvalidRequest(f"invalid token id {bad[0]} (vocabulary has {model.n_vocab} tokens)")
    return json_response({"content": model.detokenize(tokens, special=True)})


# --- server state ---

def _default_params(config: Config) -> dict[str, Any]:
    """The params block of /props: a default request's settings, with llama-server's keys for it."""
    task = native.build_tasks(native.CompletionRequest(prompt=""), [[0]], config.sampling, lambda s, a: [], 1,
                              spec=SpecParams.of(config.spec))[0]
    settings = native.generation_settings(task, config.model_alias)
    for key in ("dry_sequence_breakers", "logit_bias", "grammar", "model"):
        settings.pop(key, None)
    settings.update({
        "chat_format": "Content-only",  # what llama-server reports for a plain (non-chat) request
        "reasoning_format": config.reasoning_format,
        "reasoning_in_content": False,
        "generation_prompt": "",
        "backend_sampling": False,
    })
    return settings


@router.get("/props")
async def props(request: Request) -> Response:
    bridge = _bridge(request)
    config = _config(request)
    model = bridge.model
    info = model.info
    try:
        renderer = bridge.renderer
        template, caps = renderer.source, (renderer.caps.to_dict() if renderer.caps is not None else {})
    except ServerError:  # a template that cannot be used fails the chat routes, not this one
        template, caps = info.chat_template, {}
    out = {
        "default_generation_settings": {
            "params": {**_default_params(config), "lora": native.lora_json(bridge.scheduler.lora_scales)},
            "n_ctx": model.n_ctx_slot,
        },
        "total_slots": config.slots,
        "model_alias": config.model_alias,
        "model_ftype": info.ftype,
        "model_path": info.path,
        "modalities": model.modalities,
        # llamaserve's own: which device holds how many layers (--rpc servers, GPUs), as libllama placed them
        "devices": {"rpc_servers": config.rpc_servers, **model.placement_json()},
        # llamaserve's own: the projector (--mmproj) and its encodings: made, and spared by its cache
        "media": model.projector.info() if model.projector is not None else None,
        "endpoint_slots": config.endpoint_slots,
        "endpoint_props": config.endpoint_props,
        "endpoint_metrics": config.endpoint_metrics,
        "ui": config.webui,
        "ui_settings": config.ui_config,  # --ui-config / --ui-config-file: the web UI's default settings
        "chat_template": template,
        "chat_template_caps": caps,
        "system_prompt": config.system_prompt,
        "bos_token": info.bos_text,
        "eos_token": info.eos_text,
        "build_info": llamaserve.build_info(),
        "is_sleeping": bridge.scheduler.sleeping,  # --sleep-idle-seconds: the model is unloaded until a request needs it
        "cors_proxy_enabled": config.ui_mcp_proxy,
        # llamaserve's own: the host-memory prompt cache (--cache-ram) and what it holds now
        "prompt_cache": dataclasses.asdict(bridge.scheduler.prompt_cache_info()),
        # llamaserve's own: speculative decoding as it runs (types tried in order, the draft model), and the
        # types asked for that are not built here
        "speculative": speculative_json(config),
        # llamaserve's own: the options this server accepted without acting on them (announced at start-up)
        "ignored_options": ignored_options(config),
    }
    if config.use_jinja and info.chat_template_tool_use:
        out["chat_template_tool_use"] = info.chat_template_tool_use
    return json_response(out)


def speculative_json(config: Config) -> dict[str, Any]:
    spec = config.spec
    params = SpecParams.of(spec)
    return {
        "types": list(params.types), "draft_model": spec.draft_model if "draft-simple" in params.types else "",
        "n_max": params.n_max, "n_min": params.n_min, "p_min": params.p_min,
        "ngram_simple": {"size_n": params.ngram_size_n, "size_m": params.ngram_size_m},
        "ngram_mod": {"n_match": spec.ngram_mod_n_match, "n_min": spec.ngram_mod_n_min, "n_max": spec.ngram_mod_n_max},
        "not_built": {t: SPEC_TYPES_NOT_BUILT[t] for t in spec.active_types if t in SPEC_TYPES_NOT_BUILT},
    }


def ignored_options(config: Config) -> dict[str, Any]:
    """Config.ignored as JSON: long option name -> the value given (secrets already shown as ***)."""
    return {name: _plain(value) for name, value in config.ignored.items()}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def model_tags(config: Config) -> list[str]:
    """--tags as llama-server lists them: each tag once, sorted."""
    return sorted(set(config.tags))


@router.post("/props", openapi_extra=json_body(native.PropsRequest))
async def set_props(request: Request) -> Response:
    config = _config(request)
    if not config.endpoint_props:
        raise NotSupported("This server does not support changing global properties. Start it with `--props`")
    req = native.parse_model(native.PropsRequest, await read_json(request))
    # Plain assignments on the shared Config: the next request reads the new values (they are read
    # on the event loop only, when a request's tasks are built).
    if req.system_prompt is not None:
        config.system_prompt = req.system_prompt
    if req.stop is not None:
        config.sampling.stop = list(req.stop)
    return json_response({"success": True})


@router.get("/slots")
async def slots(request: Request) -> Response:
    config = _config(request)
    if not config.endpoint_slots:
        raise NotSupported("This server does not support slots endpoint. Start it with `--slots`")
    bridge = _bridge(request)
    bridge.model
    fail_on_no_slot = request.query_params.get("fail_on_no_slot") in ("1", "true")
    scheduler = bridge.scheduler
    # a copy taken between two steps; a sleeping model's empty slots are read as they are, without waking it
    states = await asyncio.wrap_future(scheduler.call(scheduler.slot_states, wakes=False))
    out = [slot_json(s, config.model_alias) for s in states]
    if fail_on_no_slot and all(e["is_processing"] for e in out):
        raise Unavailable("no slot available")
    return json_response(out)


@router.get("/models")
@router.get("/v1/models")
async def models(request: Request) -> Response:
    config = _config(request)
    bridge = _bridge(request)
    model = bridge.scheduler.model if bridge.scheduler.ready.is_set() else None
    alias = config.model_alias
    meta = None
    if model is not None:
        info = model.info
        meta = {
            "vocab_type": 2,
            "n_vocab": info.n_vocab,
            "n_ctx": model.n_ctx_slot,
            "n_ctx_train": info.n_ctx_train,
            "n_embd": info.n_embd,
            "n_params": info.n_params,
            "size": info.size,
        }
    return json_response({
        "models": [{
            "name": alias, "model": alias, "modified_at": "", "size": "", "digest": "", "type": "model",
            "description": "", "tags": [""], "parameters": "",
            # llama-server's: "multimodal" where a projector is loaded (or, while loading, asked for)
            "capabilities": ["completion", "multimodal"] if (model.projector is not None if model is not None
                                                             else config.mmproj_path) else ["completion"],
            "details": {"parent_model": "", "format": "gguf", "family": "", "families": [""],
                        "parameter_size": "", "quantization_level": ""},
        }],
        "object": "list",
        "data": [{
            "id": alias, "aliases": config.model_aliases or [alias], "tags": model_tags(config), "object": "model", "created": int(time.time()),
            "owned_by": "llamacpp", "meta": meta,
        }],
    })
