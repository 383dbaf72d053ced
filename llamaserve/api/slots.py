"""POST /slots/{id_slot}?action=save|restore|erase (--slot-save-path): a slot's prompt cache to and from files.

The action runs on the scheduler thread (engine/slot_files.py); on a busy slot it waits until the
slot is free, as llama-server does. Works with --no-slots too (that flag only hides GET /slots).
"""

from __future__ import annotations

import asyncio
import os
import re

from fastapi import APIRouter, Request
from starlette.responses import Response

from llamaserve.api.openapi import json_body
from llamaserve.api.requests import note, read_json
from llamaserve.api.sse import json_response
from llamaserve.engine import slot_files
from llamaserve.errors import InvalidRequest, NotSupported
from llamaserve.protocol import native, slots

router = APIRouter()

ACTIONS = ("save", "restore", "erase")

# The handler reads both parameters itself (llama-server's messages, not FastAPI's); they are documented here.
_PARAMETERS = [
    {"name": "id_slot", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}},
    {"name": "action", "in": "query", "required": True, "schema": {"type": "string", "enum": list(ACTIONS)}},
]


@router.post("/slots/{id_slot}", openapi_extra={**json_body(slots.SlotActionRequest), "parameters": _PARAMETERS})
async def slot_action(request: Request) -> Response:
    config = request.app.state.config
    if not config.slot_save_path:
        raise NotSupported("This server does not support slots action. Start it with `--slot-save-path`")
    raw_id = request.path_params["id_slot"]
    if not re.fullmatch(r"[+-]?[0-9]{1,9}", raw_id):
        raise InvalidRequest("Invalid slot ID")
    id_slot = int(raw_id)
    action = request.query_params.get("action", "")
    if action not in ACTIONS:
        raise InvalidRequest("Invalid action")
    bridge = request.app.state.bridge
    bridge.model  # 503 while loading
    note(request, slot=id_slot, action=action)

    # erase needs no body (llama-server reads none), but one that is sent must still be a valid one
    body = await request.body()
    req = native.parse_model(slots.SlotActionRequest, await read_json(request)) if body.strip() or action != "erase" else None
    if action == "erase":
        done = await asyncio.wrap_future(slot_files.erase(bridge.scheduler, id_slot))
        return json_response({"id_slot": done.id_slot, "n_erased": done.n_tokens})

    filename = req.filename
    if filename is None:
        raise InvalidRequest('"filename" is required')
    if not slots.valid_slot_filename(filename):
        raise InvalidRequest("Invalid filename")
    path = os.path.join(config.slot_save_path, filename)
    if action == "save":
        done = await asyncio.wrap_future(slot_files.save(bridge.scheduler, id_slot, path))
        return json_response({"id_slot": done.id_slot, "filename": filename, "n_saved": done.n_tokens,
                              "n_written": done.n_bytes, "timings": {"save_ms": done.ms}})
    done = await asyncio.wrap_future(slot_files.restore(bridge.scheduler, id_slot, path))
    return json_response({"id_slot": done.id_slot, "filename": filename, "n_restored": done.n_tokens,
                          "n_read": done.n_bytes, "timings": {"restore_ms": done.ms}})
