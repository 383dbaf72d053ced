"""The app's OpenAPI schema describes the real request models (what schemathesis tests against)."""

from __future__ import annotations

from pydantic import BaseModel

from llamaserve.api.openapi import json_body
from llamaserve.protocol.native import CompletionRequest
from tests.conftest import app_routes


class Inner(BaseModel):
    role: str


class Tree(BaseModel):
    """A body with nested and recursive models."""

    messages: list[Inner]
    child: "Tree | None" = None


def test_json_body_inlines_nested_models():
    body = json_body(Tree)["requestBody"]
    assert body["required"] is True and body["description"] == "A body with nested and recursive models."
    schema = body["content"]["application/json"]["schema"]
    assert "$defs" not in str(schema) and "$ref" not in str(schema)
    assert schema["properties"]["messages"]["items"]["properties"]["role"]["type"] == "string"
    # where the model refers to itself, the schema stays open instead of recursing forever
    assert {} in schema["properties"]["child"]["anyOf"]


def test_every_post_route_documents_its_json_body():
    # Routes read raw JSON; without json_body(...) their schema would have no body and
    # schemathesis would send nothing useful. A new POST route must declare its model.
    posts = [(path, op) for method, path, op in app_routes() if method == "POST"]
    assert posts
    missing = [path for path, op in posts if "application/json" not in op.get("requestBody", {}).get("content", {})]
    assert not missing, f"POST routes without openapi_extra=json_body(Model): {missing}"


def test_completion_schema_is_the_request_model():
    op = next(op for method, path, op in app_routes() if (method, path) == ("POST", "/completion"))
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert set(CompletionRequest.model_fields) <= set(schema["properties"])
    assert schema["required"] == ["prompt"]
    assert schema["properties"]["top_p"]["anyOf"][0]["maximum"] == 1
    assert schema["properties"]["n_predict"]["anyOf"][0]["minimum"] == -1
