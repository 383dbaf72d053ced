"""Bad input gets llama-server's error envelope with the right status; the server keeps serving."""

from __future__ import annotations

import pytest

from tests.helpers import assert_error


@pytest.mark.parametrize("raw", [b"{bad json", b"", b"[1, 2", b"\xff\xfe"])
def test_malformed_json(client, raw):
    assert_error(client.post("/completion", content=raw), 400, "invalid_request_error", "json")


@pytest.mark.parametrize("body, field", [
    ({"prompt": "x", "n_predict": "ten"}, "n_predict"),
    ({"prompt": "x", "temperature": "hot"}, "temperature"),
    ({"prompt": "x", "stream": "yes"}, "stream"),
    ({"prompt": "x", "stop": 5}, "stop"),
    ({"prompt": "x", "cache_prompt": 1}, "cache_prompt"),
])
def test_wrong_field_types(client, body, field):
    assert_error(client.post("/completion", json=body), 400, "invalid_request_error", field)


@pytest.mark.parametrize("body, fragment", [
    ({}, "prompt"),
    ({"prompt": []}, "empty"),
    ({"prompt": ""}, "empty"),
    ({"prompt": {"a": 1}}, "prompt"),
    ({"prompt": [1, 2, 10**9]}, "invalid token"),
    ({"prompt": "x", "samplers": ["nope"]}, "sampler"),
    ({"prompt": "x", "logit_bias": 5}, "logit_bias"),
    ({"prompt": "x", "n_probs": -1}, "n_probs"),
    ({"prompt": "x", "mirostat": 3}, "mirostat"),
    ({"prompt": "x", "id_slot": 99}, "slot"),
    ({"prompt": "x", "grammar": "root ::= ("}, "grammar"),
    ([1, 2, 3], "object"),
])
def test_invalid_requests(client, body, fragment):
    assert_error(client.post("/completion", json=body), 400, "invalid_request_error", fragment)


def test_prompt_longer_than_context(client):
    n_ctx = client.get("/props").json()["default_generation_settings"]["n_ctx"]
    r = client.post("/completion", json={"prompt": "hello " * (n_ctx + 10), "n_predict": 1})
    err = assert_error(r, 400, "exceed_context_size_error", "exceeds the available context size")
    assert err["n_ctx"] == n_ctx and err["n_prompt_tokens"] > n_ctx



@pytest.mark.parametrize("path, body", [
    ("/completion", {"prompt": "hello " * 2100, "n_predict": 1}),
    ("/v1/completions", {"prompt": "hello " * 2100, "max_tokens": 1}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hello " * 2100}], "max_tokens": 1}),
])
def test_stream_whose_first_result_is_an_error_gets_the_error_status(client, path, body):
    """As llama-server: a stream waits for its first result, so a prompt longer than the context is a
    400 with the error envelope, not a 200 stream that carries the error."""
    n_ctx = client.get("/props").json()["default_generation_settings"]["n_ctx"]
    r = client.post(path, json={**body, "stream": True})
    err = assert_error(r, 400, "exceed_context_size_error")
    assert err["n_ctx"] == n_ctx and err["n_prompt_tokens"] > n_ctx


def test_unknown_route(client):
    assert_error(client.get("/no/such/route"), 404, "not_found_error", "not found")
    assert_error(client.post("/v1/nothing", json={}), 404, "not_found_error")


def test_server_still_serves_after_errors(client):
    for _ in range(3):
        client.post("/completion", content=b"{oops")
    r = client.post("/completion", json={"prompt": "Hello", "n_predict": 2, "temperature": 0})
    assert r.status_code == 200 and r.json()["tokens_predicted"] == 2


def test_tokenize_errors(client):
    assert_error(client.post("/tokenize", json={"content": 5}), 400, "invalid_request_error", "content")
    assert_error(client.post("/detokenize", json={"tokens": ["a"]}), 400, "invalid_request_error", "tokens")
    assert_error(client.post("/detokenize", json={"tokens": [-1]}), 400, "invalid_request_error", "invalid token")


@pytest.mark.parametrize("route", ["/tokenize", "/detokenize"])
def test_tokenizer_routes_need_an_object(client, route):
    assert_error(client.post(route, json=[1, 2]), 400, "invalid_request_error", "object")
