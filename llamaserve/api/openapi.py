"""OpenAPI request bodies for routes that read raw JSON.

Our handlers parse the body themselves (orjson, then the pydantic model, so errors keep
llama-server's envelope), which leaves FastAPI's schema without request bodies. `json_body`
puts a model's JSON schema back on the route:

    @router.post("/completion", openapi_extra=json_body(CompletionRequest))

Schema-driven tools (schemathesis in tests/api/test_schemathesis.py) then test the real models.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, ConfigDict


class JsonObject(BaseModel):
    """Any JSON object (for a route that reads no particular field)."""

    model_config = ConfigDict(extra="allow")


def json_body(model: type[BaseModel], description: str | None = None) -> dict[str, Any]:
    """`openapi_extra` for a route whose JSON body is `model`."""
    schema = _inline_refs(model.model_json_schema())
    body: dict[str, Any] = {"required": True, "content": {"application/json": {"schema": schema}}}
    if description or model.__doc__:
        body["description"] = (description or model.__doc__ or "").strip().splitlines()[0]
    return {"requestBody": body}


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace pydantic's local "#/$defs/X" references by the definitions themselves.

    Inside an OpenAPI document those references would resolve against the document root,
    not the schema. A recursive model keeps an open schema ({}) where it refers to itself."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any, stack: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref.rsplit("/", 1)[1]
                if name in stack or name not in defs:
                    return {}
                merged = {**copy.deepcopy(defs[name]), **{k: v for k, v in node.items() if k != "$ref"}}
                return resolve(merged, stack + (name,))
            return {k: resolve(v, stack) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v, stack) for v in node]
        return node

    return resolve(schema, ())
