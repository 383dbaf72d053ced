"""API keys and CORS on a live server: every route but the public ones needs a key; keys never reach the log."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import app_routes, fill_path, serve

KEY = "sk-live-7f3a9c"
FILE_KEY = "sk-from-file-42"
SECRET_PROMPT = "zebra quartz lantern"


@pytest.fixture(scope="module")
def keyed_server(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("keyed")
    keyfile = tmp / "keys.txt"
    keyfile.write_text(f"# one key per line\n{FILE_KEY}\n")
    return serve(request, tmp, "-np", "1", "-c", "512", "--api-key", KEY, "--api-key-file", str(keyfile))


def unauthorized(path: str) -> dict:
    """The 401 body in the route's API family envelope."""
    if path.startswith("/api/"):
        return {"error": "Invalid API Key"}  # Ollama's
    if path.startswith("/v1/messages"):
        return {"type": "error", "error": {"type": "authentication_error", "message": "Invalid API Key"}}
    return {"error": {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}}


PUBLIC = {("GET", "/health"), ("GET", "/v1/health"), ("GET", "/models"), ("GET", "/v1/models"), ("GET", "/api/tags")}


def test_every_route_but_the_public_ones_needs_a_key(keyed_server):
    routes = [(m, p) for m, p, _ in app_routes()]
    assert ("POST", "/completion") in routes and ("GET", "/health") in routes
    with keyed_server.client() as c:
        for method, path in routes:
            r = c.request(method, fill_path(path), content=b"{}")
            if (method, path) in PUBLIC:
                assert r.status_code != 401, (method, path)
            else:
                assert r.status_code == 401, (method, path, r.status_code)
                assert r.json() == unauthorized(path), path
            # a browser's preflight carries no key and is answered anyway
            pre = c.options(fill_path(path), headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": method})
            assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "http://localhost:3000"


@pytest.mark.parametrize("headers", [
    {"Authorization": f"Bearer {KEY}"}, {"Authorization": f"Bearer {FILE_KEY}"}, {"x-api-key": KEY},
])
def test_keys_open_the_door(keyed_server, headers):
    with keyed_server.client(headers={**headers, "Origin": "https://ui.example"}) as c:
        r = c.post("/completion", json={"prompt": SECRET_PROMPT, "n_predict": 2, "temperature": 0})
        assert r.status_code == 200 and r.json()["tokens_predicted"] == 2
        assert r.headers["access-control-allow-origin"] == "https://ui.example"
        assert c.post("/tokenize", json={"content": "hi"}).status_code == 200


def test_official_sdk_sees_401_as_authentication_error(keyed_server):
    good = openai.OpenAI(base_url=keyed_server.url, api_key=KEY)
    assert good.post("/tokenize", body={"content": "Hello world"}, cast_to=object)["tokens"] == [19556, 905]
    bad = openai.OpenAI(base_url=keyed_server.url, api_key="sk-typo", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        bad.post("/tokenize", body={"content": "Hello world"}, cast_to=object)
    assert exc.value.status_code == 401
    # the model list is public: the SDK lists it even with a wrong key
    assert [m.id for m in bad.models.list()] == ["SmolLM2-135M-Instruct.Q4_1.gguf"]


def test_log_never_holds_keys_or_prompts(keyed_server):
    with keyed_server.client() as c:
        c.post("/completion", json={"prompt": SECRET_PROMPT, "n_predict": 1}, headers={"Authorization": "Bearer sk-typo-secret"})
        c.post("/completion?api_key=sk-query-secret", json={"prompt": SECRET_PROMPT, "n_predict": 1},
               headers={"Authorization": f"Bearer {KEY}"})
    log = keyed_server.log()
    assert "POST /completion 401" in log and "POST /completion 200" in log
    for secret in (KEY, FILE_KEY, "sk-typo-secret", "sk-query-secret", SECRET_PROMPT, "quartz"):
        assert secret not in log, secret
    assert "API key required" in log  # it says keys are on, not which


def test_wrong_scheme_or_empty_bearer_is_refused(keyed_server):
    for headers in ({"Authorization": f"Basic {KEY}"}, {"Authorization": "Bearer"}, {"x-api-key": ""}):
        r = httpx.post(keyed_server.url + "/tokenize", json={"content": "x"}, headers=headers, timeout=60)
        assert r.status_code == 401, headers
