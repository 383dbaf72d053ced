"""GET/POST /lora-adapters: the loaded LoRA adapters and the scales of requests that name none."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from llamaserve.api.openapi import json_body
from llamaserve.api.requests import read_json
from llamaserve.api.sse import json_response
from llamaserve.protocol import native

router = APIRouter()


@router.get("/lora-adapters")
async def lora_adapters(request: Request) -> Response:
    bridge = request.app.state.bridge
    _ = bridge.model  # 503 while loading
    scheduler = bridge.scheduler
    scales = scheduler.lora_scales
    return json_response([
        {"id": a.id, "path": a.path, "scale": scales[a.id], "task_name": a.task_name, "prompt_prefix": a.prompt_prefix}
        for a in scheduler.lora_adapters
    ])


@router.post("/lora-adapters", openapi_extra=json_body(native.LoraScales))
async def set_lora_adapters(request: Request) -> Response:
    bridge = request.app.state.bridge
    _ = bridge.model  # 503 while loading
    bridge.scheduler.set_lora_scales(native.parse_lora_scales(await read_json(request)))
    return json_response({"success": True})
