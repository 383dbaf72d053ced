"""Vertex AI prediction (AIP_MODE=PREDICTION): POST /predict {"instances": [...]} runs each instance on the route
its @requestFormat names, concurrently, and answers {"predictions": [...]} in order; AIP_HTTP_PORT wins over
--port and AIP_HEALTH_ROUTE is one more health route."""

from __future__ import annotations

import pytest

from tests.conftest import ONE_THREAD, free_port, start_server, wait_healthy
from tests.helpers import assert_error

KEY = "vertex-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def vertex(request, tmp_path_factory):
    port = free_port()
    env = {"AIP_MODE": "PREDICTION", "AIP_HTTP_PORT": str(port), "AIP_HEALTH_ROUTE": "ping"}
    # start_server gives --port a port of its own; AIP_HTTP_PORT must win, so the server is reached on it
    srv = start_server(tmp_path_factory.mktemp("vertex"), "-np", "2", "-c", "1024", "--api-key", KEY, *ONE_THREAD,
                       env=env, wait=False)
    srv.url = f"http://127.0.0.1:{port}"
    request.addfinalizer(srv.stop)
    return wait_healthy(srv, "/ping")


def predict(c, instances, **kw):
    return c.post("/predict", json={"instances": instances}, headers=AUTH, **kw)


def test_instances_run_on_the_routes_they_name_in_order(vertex):
    with vertex.client() as c:
        r = predict(c, [
            {"@requestFormat": "chatCompletions", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]},
            {"@requestFormat": "/v1/completions", "prompt": "One, two,", "max_tokens": 3, "stream": True},
            {"@requestFormat": "tokenize", "content": "Hello"},
            {"@requestFormat": "applyTemplate", "messages": [{"role": "user", "content": "Hi"}]},
            {"@requestFormat": "embeddings", "input": "x"},  # a route's error is that instance's prediction
        ])
        direct = c.post("/tokenize", json={"content": "Hello"}, headers=AUTH).json()
    assert r.status_code == 200, r.text
    chat, completion, tokens, template, refused = r.json()["predictions"]
    assert chat["object"] == "chat.completion" and chat["choices"][0]["message"]["role"] == "assistant"
    assert chat["usage"]["completion_tokens"] == 4
    assert completion["object"] == "text_completion"  # "stream": true was turned off
    assert tokens == direct
    assert "Hi" in template["prompt"]
    assert refused["error"]["code"] == 501  # no --embeddings


def test_bad_instances_get_their_own_errors(vertex):
    with vertex.client() as c:
        r = predict(c, [3, {"content": "no format"}, {"@requestFormat": "noSuchRoute"}, {"@requestFormat": 7},
                        {"@requestFormat": "tokenize", "content": "ok"}])
    assert r.status_code == 200
    errors = r.json()["predictions"]
    for p, fragment in zip(errors, ["must be a JSON object", "string @requestFormat", "noSuchRoute", "string @requestFormat"]):
        assert p["error"]["type"] == "invalid_request_error" and fragment in p["error"]["message"], p
    assert errors[-1]["tokens"]


@pytest.mark.parametrize("body, fragment", [
    (b"[1, 2]", "must be a JSON object"),
    (b'{"instance": []}', "array field named instances"),
    (b'{"instances": {}}', "array field named instances"),
    (b"{", "invalid JSON"),
    (b'{"instances": [' + b",".join([b"{}"] * 129) + b"]}", "maximum size of 128"),
])
def test_bad_bodies_are_400(vertex, body, fragment):
    with vertex.client() as c:
        r = c.post("/predict", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert_error(r, 400, "invalid_request_error", fragment)


def test_the_api_key_applies(vertex):
    with vertex.client() as c:
        r = c.post("/predict", json={"instances": [{"@requestFormat": "tokenize", "content": "x"}]})
    assert r.status_code == 401


def test_without_aip_mode_there_is_no_predict_route(server):
    with server.client() as c:
        assert c.post("/predict", json={"instances": []}).status_code == 404


def test_a_predict_route_that_is_taken_stops_start_up(tmp_path):
    srv = start_server(tmp_path, env={"AIP_MODE": "PREDICTION", "AIP_PREDICT_ROUTE": "completion",
                                      "AIP_HTTP_PORT": str(free_port())}, wait=False)
    assert srv.proc.wait(60) == 1
    assert "AIP_PREDICT_ROUTE=/completion conflicts" in srv.log()
