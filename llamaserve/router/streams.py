"""The router's resumable-stream routes (GET/DELETE /v1/stream, POST /v1/streams/lookup): each goes to the
child whose model serves the conversation (router/conversations.py), which holds the session
(api/streams.py)."""

from __future__ import annotations

import logging

import httpx
from fastapi import APIRouter, Request
from starlette.responses import Response

from llamaserve.api.openapi import json_body
from llamaserve.api.requests import read_json
from llamaserve.api.sse import json_response
from llamaserve.api.streams import StreamLookupRequest, conversation_param, requested_ids
from llamaserve.errors import NotFound, Unavailable
from llamaserve.router.conversations import ConversationOwners
from llamaserve.router.pool import LOADING, ModelPool, ModelState, child_url
from llamaserve.router.proxy import forward, upstream_headers

log = logging.getLogger("llamaserve.router")

router = APIRouter()

# A stop or a lookup is a quick call on loopback: a child that does not answer by then is left out.
CHILD_CALL_TIMEOUT = 5.0


def _owner(request: Request, conversation_id: str) -> tuple[str | None, ModelState | None]:
    """The model the conversation was sent to, and its state if it serves now."""
    pool: ModelPool = request.app.state.pool
    owners: ConversationOwners = request.app.state.owners
    name = owners.lookup(conversation_id)
    state = pool.states.get(name) if name is not None else None
    return name, (state if state is not None and state.serving else None)


@router.get("/v1/stream")
async def resume(request: Request) -> Response:
    pool: ModelPool = request.app.state.pool
    cid = conversation_param(request)
    name, state = _owner(request, cid)
    if state is None:
        # the session appears once the model has loaded and the waiting request has reached it
        if name is not None and pool.states[name].status == LOADING:
            raise Unavailable("Stream owner model is loading, retry later")
        raise NotFound("Stream not found or expired")
    state = await pool.acquire(state.name, autoload=False)  # counted active: not unloaded mid-replay
    return await forward(pool.client, child_url(state), request.scope, b"", state.name, lambda: pool.release(state))


@router.delete("/v1/stream")
async def stop(request: Request) -> Response:
    pool: ModelPool = request.app.state.pool
    cid = conversation_param(request)
    name, state = _owner(request, cid)
    if state is not None:
        try:
            await pool.client.delete(child_url(state) + "/v1/stream", params={"conv_id": cid},
                                     headers=upstream_headers(request.scope), timeout=CHILD_CALL_TIMEOUT)
        except httpx.HTTPError as exc:
            log.warning("model %s: stop of conversation %s not delivered: %s", state.name, cid, exc)
    elif name is not None:
        log.info("stop of conversation %s while model %s loads: its waiting request is cancelled", cid, name)
    # forgetting ends the conversation's ticket, which is what cancels a request still waiting for its model
    request.app.state.owners.forget(cid)
    return Response(status_code=204)


@router.post("/v1/streams/lookup", openapi_extra=json_body(StreamLookupRequest))
async def lookup(request: Request) -> Response:
    pool: ModelPool = request.app.state.pool
    by_child: dict[str, list[str]] = {}
    for cid in requested_ids(await read_json(request)):
        _, state = _owner(request, cid)
        if state is not None:
            by_child.setdefault(child_url(state), []).append(cid)
    found = []
    for url, ids in by_child.items():
        try:
            r = await pool.client.post(url + "/v1/streams/lookup", json={"conversation_ids": ids},
                                       headers=upstream_headers(request.scope), timeout=CHILD_CALL_TIMEOUT)
            entries = r.json() if r.status_code == 200 else []
        except (httpx.HTTPError, ValueError):
            continue
        if isinstance(entries, list):
            found += [e for e in entries if isinstance(e, dict)]
    return json_response(found)
