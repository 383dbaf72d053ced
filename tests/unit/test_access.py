"""API keys, CORS and the body limit as ASGI middleware, in-process around a stub app (no model)."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from llamaserve.api import errors
from llamaserve.api.access import PUBLIC_ROUTES, AccessControl, AccessPolicy
from llamaserve.api.limits import BodyLimit, check_n, check_n_probs, check_queue
from llamaserve.engine import Occupancy
from llamaserve.config import Config
from llamaserve.errors import InvalidRequest, ServerError, Unavailable


async def echo(request: Request):
    body = await request.body()
    return JSONResponse({"path": request.url.path, "size": len(body)})


def stub_app(**config) -> Starlette:
    cfg = Config(**config)
    paths = ("/health", "/v1/models", "/completion", "/props", "/api/tags", "/api/chat", "/v1/messages", "/", "/assets/app.js")
    routes = [Route(p, echo, methods=["GET", "POST"]) for p in paths]
    app = Starlette(routes=routes, exception_handlers={ServerError: lambda req, exc: errors.error_response(exc, req.url.path)})
    app.add_middleware(BodyLimit, limit=cfg.max_body_size)
    app.add_middleware(AccessControl, config=cfg)
    return app


@pytest.fixture()
def keyed():
    return TestClient(stub_app(api_keys=["sk-one", "sk-two"]))


def assert_401(r):
    assert r.status_code == 401
    assert r.json() == {"error": {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}}
    assert r.headers["www-authenticate"] == "Bearer"


def test_no_keys_means_open():
    c = TestClient(stub_app())
    assert c.post("/completion", content=b"{}").status_code == 200


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer sk-wrong"},
    {"Authorization": "sk-on"},
    {"Authorization": "Bearer sk-one-and-more"},
    {"Authorization": "Basic c2stb25lOg=="},
    {"x-api-key": "SK-ONE"},
    {"Authorization": "Bearer "},
])
def test_missing_or_wrong_key_is_401(keyed, headers):
    assert_401(keyed.post("/completion", headers=headers, content=b"{}"))
    assert_401(keyed.get("/props", headers=headers))


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer sk-one"},
    {"Authorization": "bearer sk-two"},
    {"Authorization": "sk-one"},  # llama-server accepts the bare key too
    {"x-api-key": "sk-two"},  # as Anthropic clients send it
    {"Authorization": "Bearer sk-wrong", "x-api-key": "sk-one"},
])
def test_valid_key(keyed, headers):
    r = keyed.post("/completion", headers=headers, content=b"{}")
    assert r.status_code == 200 and r.json()["path"] == "/completion"


def test_public_routes_need_no_key(keyed):
    assert PUBLIC_ROUTES == {"/health", "/v1/health", "/models", "/v1/models", "/api/tags"}
    for path in ("/health", "/v1/models", "/api/tags"):
        assert keyed.get(path).status_code == 200
    # public means reading them: POST to the same paths (router mode's /models) needs the key
    assert_401(keyed.post("/v1/models", content=b"{}"))
    assert_401(keyed.get("/health/"))


def test_web_ui_files_are_public(keyed):
    for path in ("/", "/assets/app.js"):
        assert keyed.get(path).status_code == 200
    assert_401(keyed.post("/", content=b"{}"))


def test_401_in_each_family_envelope(keyed):
    r = keyed.post("/v1/messages", content=b"{}")
    assert r.status_code == 401
    assert r.json() == {"type": "error", "error": {"type": "authentication_error", "message": "Invalid API Key"}}
    r = keyed.post("/api/chat", content=b"{}")
    assert r.status_code == 401 and r.json() == {"error": "Invalid API Key"}


def test_key_comparison_is_over_all_keys():
    policy = AccessPolicy(Config(api_keys=["a", "b", "c"]))
    assert policy.authorized(b"Bearer c", None)
    assert not policy.authorized(b"Bearer d", None)
    assert not policy.authorized(None, None)
    assert AccessPolicy(Config()).authorized(None, None)


def test_preflight_needs_no_key_and_answers_as_llama_server(keyed):
    r = keyed.options("/completion", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    })
    assert r.status_code == 200 and r.content == b""
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    assert r.headers["access-control-allow-credentials"] == "true"
    assert r.headers["access-control-allow-methods"] == "GET, POST, DELETE, OPTIONS"
    assert r.headers["access-control-allow-headers"] == "*"  # --cors-headers as given, as llama-server
    named = TestClient(stub_app(api_keys=["k"], cors_headers="Authorization, Content-Type"))
    assert named.options("/completion", headers={"Origin": "https://app.example"}).headers[
        "access-control-allow-headers"] == "Authorization, Content-Type"
    # a preflight on an unknown path is answered the same way, as llama-server does
    assert keyed.options("/nope", headers={"Origin": "https://x.example"}).status_code == 200


def test_cors_headers_on_every_response_even_errors(keyed):
    origin = {"Origin": "https://app.example"}
    for r in (keyed.get("/health", headers=origin), keyed.post("/completion", headers=origin, content=b"{}")):
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        assert r.headers["access-control-allow-credentials"] == "true"
        assert "Origin" in r.headers["vary"]
    assert keyed.get("/health").headers["access-control-allow-origin"] == "*"


def test_cors_without_credentials_is_a_plain_wildcard():
    c = TestClient(stub_app(cors_credentials=False))
    r = c.get("/health", headers={"Origin": "https://app.example"})
    assert r.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in r.headers
    pre = c.options("/completion", headers={"Origin": "https://app.example"})
    assert pre.headers["access-control-allow-credentials"] == "false"
    assert pre.headers["access-control-allow-headers"] == "*"


@pytest.mark.parametrize("origin, allowed", [
    ("http://localhost:5173", True), ("http://127.0.0.1", True), ("http://[::1]:8000", True),
    ("https://evil.example", False), ("http://localhost.evil.example", False),
])
def test_cors_localhost_only(origin, allowed):
    c = TestClient(stub_app(cors_origins="localhost"))
    r = c.get("/health", headers={"Origin": origin})
    assert (r.headers.get("access-control-allow-origin") == origin) is allowed
    assert ("access-control-allow-origin" in r.headers) is allowed


def test_cors_origin_list():
    c = TestClient(stub_app(cors_origins="https://a.example, https://b.example/"))
    for origin in ("https://a.example", "https://b.example"):
        assert c.get("/health", headers={"Origin": origin}).headers["access-control-allow-origin"] == origin
    r = c.options("/completion", headers={"Origin": "https://c.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_body_limit_by_content_length_and_while_streaming():
    c = TestClient(stub_app(max_body_size=1000))
    assert c.post("/completion", content=b"x" * 1000).json()["size"] == 1000
    r = c.post("/completion", content=b"x" * 1001)
    assert r.status_code == 413
    assert r.json()["error"]["type"] == "invalid_request_error" and "1000 bytes" in r.json()["error"]["message"]

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(5):
            yield b"x" * 300

    r = c.post("/completion", content=chunks())
    assert r.status_code == 413 and r.json()["error"]["code"] == 413


def test_limit_checks():
    cfg = Config(n_parallel=4, max_n_probs=5, max_queue=2)
    check_n(cfg, 4)
    for bad in (0, 5):
        with pytest.raises(InvalidRequest, match='"n" must be between 1 and 4'):
            check_n(cfg, bad)
    check_n(Config(max_n=16), 16)
    check_n_probs(cfg, 5)
    with pytest.raises(InvalidRequest, match="--max-n-probs"):
        check_n_probs(cfg, 6, field="top_logprobs")

    Sched = Occupancy(busy=1, free=1, queued=1)  # one of two slots busy, one task waiting

    check_queue(cfg, Sched, 2)  # 1 + 2 - 1 free = 2 waiting: at the limit
    with pytest.raises(Unavailable, match="--max-queue"):
        check_queue(cfg, Sched, 3)
    check_queue(Config(), Sched, 10**6)  # no limit by default
