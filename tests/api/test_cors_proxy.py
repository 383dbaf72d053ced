"""--ui-mcp-proxy: /cors-proxy?url= fetches the target for the web UI, forwarding only the headers the caller
names with X-Llama-Server-Proxy-Header-*; without the flag it is 403. The target is a real HTTP server on
loopback that records what it was sent."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.conftest import serve, start_server
from tests.helpers import assert_error

KEY = "proxy-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


class Target(BaseHTTPRequestHandler):
    """/status/N answers N with no body; anything else 200 (201 for a POST) with a body and headers of
    its own, among them CORS headers the proxy must not pass on."""

    def _answer(self, body: bytes = b"") -> None:
        self.server.seen.append({"method": self.command, "path": self.path,
                                 "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
        if self.path.startswith("/status/"):
            self.send_response(int(self.path.rsplit("/", 1)[1]))
            self.end_headers()
            return
        payload = b'{"jsonrpc": "2.0", "result": "pong"}'
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Mcp-Session-Id", "session-1")
        self.send_header("Access-Control-Allow-Origin", "https://evil.example")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        self._answer()

    def do_POST(self):
        self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def target():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Target)
    srv.seen = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def proxy(request):
    return serve(request, "cors-proxy", "--ui-mcp-proxy", "--api-key", KEY, "-np", "1", "-c", "512")


def url_of(target, path: str = "/mcp") -> str:
    return f"http://127.0.0.1:{target.server_port}{path}"


def test_only_the_named_headers_go_out(proxy, target):
    with proxy.client() as c:
        r = c.get("/cors-proxy", params={"url": url_of(target, "/mcp?x=1")}, headers={
            **AUTH, "X-Api-Key": KEY, "Cookie": "session=secret", "Proxy-Authorization": "Basic c2VjcmV0",
            "X-Llama-Server-Proxy-Header-Authorization": "Bearer for-the-mcp-server",
            "x-llama-server-proxy-header-accept": "application/json, text/event-stream",
            "X-Llama-Server-Proxy-Header-Mcp-Session-Id": "abc",
            "X-Llama-Server-Proxy-Header-Content-Length": "999",  # the proxy sets the framing itself
        })
    assert r.status_code == 200, r.text
    seen = target.seen[-1]
    assert seen["path"] == "/mcp?x=1"
    sent = seen["headers"]
    assert sent["authorization"] == "Bearer for-the-mcp-server"
    assert sent["accept"] == "application/json, text/event-stream"
    assert sent["mcp-session-id"] == "abc"
    assert not {"x-api-key", "cookie", "proxy-authorization"} & set(sent)
    assert not [k for k in sent if k.startswith("x-llama-server-proxy-header-")]
    assert sent["accept-encoding"] == "identity" and "content-length" not in sent


def test_the_answer_comes_back_without_the_targets_cors_headers(proxy, target):
    with proxy.client() as c:
        r = c.post("/cors-proxy", params={"url": url_of(target)}, content=b'{"jsonrpc": "2.0", "method": "ping"}',
                   headers={**AUTH, "Origin": "http://localhost:5173",
                            "X-Llama-Server-Proxy-Header-Content-Type": "application/json"})
    assert r.status_code == 201
    assert r.json() == {"jsonrpc": "2.0", "result": "pong"}
    assert r.headers["content-type"] == "application/json"
    assert r.headers["mcp-session-id"] == "session-1"
    assert r.headers["access-control-allow-origin"] == "http://localhost:5173"  # this server's, not the target's
    seen = target.seen[-1]
    assert seen["method"] == "POST" and seen["body"] == b'{"jsonrpc": "2.0", "method": "ping"}'
    assert seen["headers"]["content-type"] == "application/json"


@pytest.mark.parametrize("status", [204, 404, 500])
def test_the_targets_status_passes_through(proxy, target, status):
    with proxy.client() as c:
        r = c.post("/cors-proxy", params={"url": url_of(target, f"/status/{status}")}, json={}, headers=AUTH)
    assert r.status_code == status
    assert r.content == b""


@pytest.mark.parametrize("url, fragment", [
    (None, "url query parameter is required"),
    ("ftp://127.0.0.1/x", "unsupported URL scheme"),
    ("file:///etc/passwd", "unsupported URL scheme"),
    ("http://user:pw@127.0.0.1/", "authentication in target URL"),
    ("http:///nohost", "missing host"),
])
def test_bad_target_urls_are_400(proxy, url, fragment):
    with proxy.client() as c:
        r = c.get("/cors-proxy", params={"url": url} if url is not None else {}, headers=AUTH)
    assert_error(r, 400, "invalid_request_error", fragment)


def test_an_unreachable_target_is_502(proxy):
    with proxy.client() as c:
        r = c.get("/cors-proxy", params={"url": "http://127.0.0.1:9/"}, headers=AUTH)
    assert_error(r, 502, "server_error", "proxy error")


def test_it_needs_the_api_key(proxy, target):
    n = len(target.seen)
    r = httpx.get(proxy.url + "/cors-proxy", params={"url": url_of(target)})
    assert r.status_code == 401
    assert len(target.seen) == n  # nothing went out


def test_props_says_it_is_on(proxy):
    with proxy.client() as c:
        assert c.get("/props", headers=AUTH).json()["cors_proxy_enabled"] is True


def test_without_the_flag_it_is_403(server, target):
    n = len(target.seen)
    with server.client() as c:
        for method in ("GET", "POST"):
            r = c.request(method, "/cors-proxy", params={"url": url_of(target)})
            assert_error(r, 403, "feature_disabled", "disabled")
        assert c.get("/props").json()["cors_proxy_enabled"] is False
    assert len(target.seen) == n


def test_the_router_serves_it_without_loading_a_model(tmp_path, target):
    router = start_server(tmp_path, "--ui-mcp-proxy", router=True)
    try:
        with router.client() as c:
            r = c.get("/cors-proxy", params={"url": url_of(target, "/from-router")},
                      headers={"X-Llama-Server-Proxy-Header-Accept": "application/json"})
            assert r.status_code == 200 and r.json()["result"] == "pong"
            assert target.seen[-1]["path"] == "/from-router" and target.seen[-1]["headers"]["accept"] == "application/json"
            assert all(m["status"]["value"] == "unloaded" for m in c.get("/models").json()["data"])
    finally:
        router.stop()
