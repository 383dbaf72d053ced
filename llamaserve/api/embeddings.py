"""Embedding and reranking routes: /embedding, /embeddings, /v1/embeddings; /rerank, /reranking, /v1/rerank, /v1/reranking."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from llamaserve.api.bridge import ClientGone, EngineBridge
from llamaserve.api.media_fetch import read_chat_json
from llamaserve.api.openapi import json_body
from llamaserve.api.requests import note, read_json
from llamaserve.api.sse import json_response
from llamaserve.config import Config
from llamaserve.engine import Result, Task
from llamaserve.errors import InvalidRequest, NotSupported
from llamaserve.protocol import embeddings

router = APIRouter()


def _state(request: Request) -> tuple[EngineBridge, Config]:
    return request.app.state.bridge, request.app.state.config


async def _run(request: Request, bridge: EngineBridge, tasks: list[Task]) -> list[Result] | None:
    """Final results in index order (None when the client went away); notes the request's log facts."""
    try:
        results = await bridge.collect(request, tasks)
    except ClientGone:
        return None
    note(request, inputs=len(results), prompt=sum(r.n_prompt for r in results))
    return results


@router.post("/embedding", openapi_extra=json_body(embeddings.EmbeddingBody))
@router.post("/embeddings", openapi_extra=json_body(embeddings.EmbeddingBody))
async def native_embeddings(request: Request) -> Response:
    return await _embeddings(request, openai=False)


@router.post("/v1/embeddings", openapi_extra=json_body(embeddings.EmbeddingBody))
async def openai_embeddings(request: Request) -> Response:
    return await _embeddings(request, openai=True)


async def _embeddings(request: Request, openai: bool) -> Response:
    bridge, config = _state(request)
    model = bridge.model
    if not config.embedding_mode:
        raise NotSupported("This server does not support embeddings. Start it with `--embeddings`")
    if openai and model.info.pooling == "none":
        raise InvalidRequest("Pooling type 'none' is not OAI compatible. Please use a different pooling type")
    req = embeddings.parse_embedding_request(
        await read_chat_json(request), model.tokenize, model.n_vocab, model.info.n_embd_out, config.embd_normalize, openai,
        model.tokenize_media if model.projector is not None else None)
    results = await _run(request, bridge, embeddings.build_embedding_tasks(req))
    if results is None:
        return Response(status_code=499)
    if req.openai:
        return json_response(embeddings.openai_embedding_response(results, req, config.model_alias))
    return json_response(embeddings.native_embedding_response(results))


@router.post("/rerank", openapi_extra=json_body(embeddings.RerankBody))
@router.post("/reranking", openapi_extra=json_body(embeddings.RerankBody))
@router.post("/v1/rerank", openapi_extra=json_body(embeddings.RerankBody))
@router.post("/v1/reranking", openapi_extra=json_body(embeddings.RerankBody))
async def rerank(request: Request) -> Response:
    bridge, config = _state(request)
    model = bridge.model
    info = model.info
    if not (config.embedding_mode and info.pooling == "rank"):
        raise NotSupported("This server does not support reranking. Start it with `--reranking`")
    req = embeddings.parse_rerank_request(await read_json(request))
    vocab = embeddings.RerankVocab(info.bos, info.eos, info.sep, info.add_bos, info.add_eos, info.add_sep, info.rerank_template)
    results = await _run(request, bridge, embeddings.build_rerank_tasks(req, model.tokenize, vocab))
    if results is None:
        return Response(status_code=499)
    return json_response(embeddings.rerank_response(results, req, config.model_alias))
