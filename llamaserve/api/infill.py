"""/infill: fill-in-the-middle for code models, a native completion whose prompt is built from FIM tokens."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from llamaserve.api.native import complete
from llamaserve.api.openapi import json_body
from llamaserve.api.requests import read_json_object
from llamaserve.errors import NotSupported
from llamaserve.protocol import infill, native

router = APIRouter()


@router.post("/infill", openapi_extra=json_body(infill.InfillBody))
async def infill_route(request: Request) -> Response:
    bridge, config = request.app.state.bridge, request.app.state.config
    model = bridge.model
    fim = infill.FimTokens.from_ids(model.info.fim or {})
    missing = fim.missing()
    if missing:
        raise NotSupported(f"Infill is not supported by this model: {missing}")
    body = await read_json_object(request)
    req = infill.parse_infill(body)
    tokens = infill.build_infill_prompt(
        req, model.tokenize, fim, bos=model.info.bos, add_bos=model.info.add_bos, n_batch=config.n_batch,
        n_predict=config.sampling.n_predict, n_ctx=model.n_ctx_slot, spm=config.spm_infill,
    )
    # every other field is a /completion field; the prompt is now the FIM token sequence
    return await complete(request, native.parse_request({**body, "prompt": tokens}))
