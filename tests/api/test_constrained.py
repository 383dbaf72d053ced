"""Constrained output through HTTP: `grammar` and `json_schema` on /completion, and their 400s.

Bad grammars and unsupported schemas are refused before the request is queued, so a streaming
client gets the same plain 400 envelope as a non-streaming one.
"""

from __future__ import annotations

import json

import jsonschema
import pytest

PROMPT = "Write a JSON object describing a person.\n"


@pytest.fixture()
def client(server):
    # generous: only correctness is asserted here, and a shared machine can be slow
    with server.client(timeout=600) as c:
        yield c


def post(client, **body):
    body.setdefault("temperature", 0)
    return client.post("/completion", json={"prompt": PROMPT, "n_predict": 256, **body})


def assert_400(r, fragment: str):
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["code"] == 400 and err["type"] == "invalid_request_error"
    assert fragment in err["message"], err["message"]
    return err


def test_json_schema_constrains_output(client):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer", "minimum": 0, "maximum": 120},
                       "city": {"enum": ["Paris", "Rome", "Oslo"]}},
        "required": ["name", "age", "city"],
        "additionalProperties": False,
    }
    r = post(client, json_schema=schema)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["stop_type"] == "eos", d
    value = json.loads(d["content"])
    jsonschema.validate(value, schema)
    assert list(value) == ["name", "age", "city"]
    assert d["generation_settings"]["grammar"].startswith("root ::= ")


def test_json_schema_streamed_equals_non_streamed(client):
    schema = {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 9}, "minItems": 2, "maxItems": 4}
    whole = post(client, json_schema=schema).json()["content"]
    pieces = []
    with client.stream("POST", "/completion", json={"prompt": PROMPT, "n_predict": 256, "temperature": 0,
                                                    "json_schema": schema, "stream": True}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                pieces.append(json.loads(line[6:])["content"])
    assert "".join(pieces) == whole
    jsonschema.validate(json.loads(whole), schema)


def test_gbnf_grammar_constrains_output(client):
    d = post(client, grammar='root ::= ("yes" | "no") "!"').json()
    assert d["content"] in ("yes!", "no!") and d["stop_type"] == "eos"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("body, fragment", [
    ({"grammar": "root ::= ("}, "invalid grammar: expecting ')'"),
    ({"grammar": "root ::= undefined-rule"}, "undefined rule 'undefined-rule'"),
    ({"grammar": 'start ::= "x"'}, "no 'root' rule"),
    ({"json_schema": {"type": "object", "properties": {"x": {"patternProperties": {}}}}},
     '"json_schema": unsupported JSON Schema keyword "patternProperties" at #/properties/x'),
    ({"json_schema": {"$ref": "#/$defs/Missing"}}, '$ref "#/$defs/Missing" not found'),
    ({"json_schema": {"type": "string", "pattern": "(unclosed"}}, "missing ')'"),
    ({"json_schema": {"type": "string", "format": "email"}}, 'unsupported "format": "email"'),
    ({"json_schema": "not a schema"}, '"json_schema" must be a JSON Schema'),
    ({"json_schema": {"type": "string"}, "grammar": 'root ::= "x"'}, '"grammar" and "json_schema" cannot be used together'),
])
def test_refused_before_generation(client, body, fragment, stream):
    assert_400(post(client, stream=stream, **body), fragment)


def test_server_keeps_serving_after_refusals(client):
    for _ in range(3):
        assert post(client, grammar="root ::= [").status_code == 400
        assert post(client, json_schema={"not": {}}, stream=True).status_code == 400
    d = post(client, json_schema={"type": "boolean"}).json()
    assert d["content"] in ("true", "false")


# --- the same converter and check behind OpenAI's response_format ---

def chat(client, **body):
    return client.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "Give me a color as JSON."}], "max_tokens": 128, "temperature": 0, **body})


def test_response_format_json_schema(client):
    schema = {"type": "object", "properties": {"color": {"enum": ["red", "green", "blue"]}}, "required": ["color"],
              "additionalProperties": False}
    r = chat(client, response_format={"type": "json_schema", "json_schema": {"name": "c", "strict": True, "schema": schema}})
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    jsonschema.validate(json.loads(choice["message"]["content"]), schema)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("body, fragment", [
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": {"type": "object", "propertyNames": {}}}}},
     'unsupported JSON Schema keyword "propertyNames" at #'),
    ({"grammar": "root ::= nowhere"}, "undefined rule 'nowhere'"),
])
def test_openai_routes_refuse_before_generation(client, body, fragment, stream):
    assert_400(chat(client, stream=stream, **body), fragment)
