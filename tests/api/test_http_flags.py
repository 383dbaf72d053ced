"""The HTTP options through real servers: start-up notices and /props' ignored_options, --api-prefix,
--ui-config, --tags, --log-prompts-dir, --sse-ping-interval, --path, --reuse-port, and response header
names as llama-server spells them (read from the raw response: httpx lowercases them)."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import MODEL, ONE_THREAD, LiveServer, free_port, serve, start_server, wait_healthy
from tests.helpers import names, raw, spelled_like_llama_server

PREFIX = "/llama"
UI_CONFIG = {"theme": "dark", "showTokensPerSecond": True}


@pytest.fixture(scope="module")
def prompts_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("prompts")


@pytest.fixture(scope="module")
def srv(request, prompts_dir):
    """Prefixed, with web UI settings, tags, an option without effect, a repeated option (-t: start_server
    gives one), metrics, the prompts log and one-second pings."""
    s = serve(request, "flags", "--api-prefix", PREFIX, "--ui-config", json.dumps(UI_CONFIG),
              "--tags", "b, a,b", "--defrag-thold", "0.1", "-np", "1", "-c", "4096", "--metrics",
              "--log-prompts-dir", str(prompts_dir), "--sse-ping-interval", "1", *ONE_THREAD, wait=False)
    return wait_healthy(s, PREFIX + "/health")


@pytest.fixture()
def c(srv):
    with srv.client(PREFIX) as client:
        yield client


# --- start-up notices, /props ---

def test_each_notice_is_logged_once_as_a_warning(srv):
    log = srv.log()
    noop = [l for l in log.splitlines() if "--defrag-thold has no effect" in l]
    assert len(noop) == 1 and re.match(r"\d\d:\d\d:\d\d\.\d{3} W llamaserve: ", noop[0])
    repeated = [l for l in log.splitlines() if "-t given more than once" in l]
    assert len(repeated) == 1 and " W llamaserve: " in repeated[0]


def test_props_shows_ignored_options_and_ui_settings(c):
    p = c.get("/props").json()
    assert p["ignored_options"] == {"--defrag-thold": 0.1}
    assert p["ui_settings"] == UI_CONFIG


def test_props_of_a_plain_server(server):
    p = httpx.get(server.url + "/props", timeout=60).json()
    assert p["ignored_options"] == {} and p["ui_settings"] == {}


# --- --api-prefix ---

def test_routes_are_served_under_the_prefix_only(srv, c):
    assert c.get("/health").json() == {"status": "ok"}
    assert c.post("/tokenize", json={"content": "Hello"}).json()["tokens"]
    assert c.get("/api/tags").status_code == 200  # Ollama's routes too
    for path in ("/health", "/props", "/v1/models", PREFIX, PREFIX + "x/health"):
        r = httpx.get(srv.url + path, timeout=30)
        assert r.status_code == 404, path
        assert r.json() == {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}}


def test_web_ui_is_under_the_prefix(c):
    index = c.get("/")
    assert index.status_code == 200 and '<div id="app">' in index.text
    assets = re.findall(r'(?:src|href)="\./(assets/[^"]+)"', index.text)
    assert assets and all(c.get("/" + a).status_code == 200 for a in assets)


def test_cors_preflight_is_answered_on_any_path(srv):
    r = httpx.options(srv.url + "/completions", headers={"Origin": "http://x.test", "Access-Control-Request-Method": "POST"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://x.test"


def test_request_log_shows_the_path_as_requested(srv, c):
    c.post("/tokenize", json={"content": "logged"})
    assert f"POST {PREFIX}/tokenize 200" in srv.log()


# --- --tags ---

def test_tags_in_the_model_list(c):
    for path in ("/v1/models", "/models"):
        assert c.get(path).json()["data"][0]["tags"] == ["a", "b"]


def test_no_tags_by_default(server):
    assert httpx.get(server.url + "/v1/models").json()["data"][0]["tags"] == []


# --- header names ---

def test_header_names_as_llama_server_spells_them(srv):
    status, headers, _ = raw(srv, "GET", PREFIX + "/metrics")
    assert status == 200
    assert b"Process-Start-Time-Unix" in names(headers)
    assert {b"Content-Type", b"Content-Length", b"Date", b"Server"} <= set(names(headers))
    assert all(spelled_like_llama_server(n) for n in names(headers)), names(headers)

    status, headers, _ = raw(srv, "OPTIONS", "/completions", {"Origin": "web.mydomain.fr", "Access-Control-Request-Method": "POST"})
    assert status == 200
    got = dict(headers)
    assert got[b"Access-Control-Allow-Origin"] == b"web.mydomain.fr"
    assert got[b"Access-Control-Allow-Credentials"] == b"true"
    assert got[b"Access-Control-Allow-Methods"] == b"GET, POST, DELETE, OPTIONS"
    assert got[b"Access-Control-Allow-Headers"] == b"*"


def test_http_client_sees_llama_server_names(srv):
    # what llama.cpp's test suite does: the response headers copied into a case-sensitive dict
    conn = http.client.HTTPConnection(urlsplit(srv.url).hostname, urlsplit(srv.url).port, timeout=60)
    conn.request("GET", PREFIX + "/metrics", headers={"Origin": "http://localhost"})
    response = conn.getresponse()
    response.read()
    headers = dict(response.getheaders())
    conn.close()
    assert "Process-Start-Time-Unix" in headers and headers["Access-Control-Allow-Origin"] == "http://localhost"


def test_stream_header_names(srv):
    body = json.dumps({"prompt": "Hi", "n_predict": 2, "stream": True}).encode()
    status, headers, rest = raw(srv, "POST", PREFIX + "/completion", {"Content-Type": "application/json"}, body)
    assert status == 200
    got = dict(headers)
    assert got[b"Transfer-Encoding"] == b"chunked" and got[b"X-Accel-Buffering"] == b"no"
    assert got[b"Content-Type"].startswith(b"text/event-stream")
    assert all(spelled_like_llama_server(n) for n in names(headers)), names(headers)
    assert b'"stop":true' in rest


# --- --log-prompts-dir ---

def _new_files(directory, before: set[str]) -> list[str]:
    return sorted(set(os.listdir(directory)) - before)


def test_prompt_of_a_completion_is_written(c, prompts_dir):
    before = set(os.listdir(prompts_dir))
    c.post("/completion", json={"prompt": "Prompt files are for debugging", "n_predict": 1}).raise_for_status()
    new = _new_files(prompts_dir, before)
    assert len(new) == 1 and re.fullmatch(r"\d{13}\.txt", new[0])
    assert (prompts_dir / new[0]).read_text().endswith("Prompt files are for debugging")


def test_rendered_chat_prompt_is_written(c, prompts_dir):
    before = set(os.listdir(prompts_dir))
    c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "What is in the file?"}],
                                         "max_tokens": 1}).raise_for_status()
    (name,) = _new_files(prompts_dir, before)
    text = (prompts_dir / name).read_text()
    assert "<|im_start|>user\nWhat is in the file?<|im_end|>" in text and text.rstrip().endswith("<|im_start|>assistant")


def test_several_prompts_are_a_json_array(c, prompts_dir):
    before = set(os.listdir(prompts_dir))
    c.post("/completion", json={"prompt": ["first one", "second one"], "n_predict": 1}).raise_for_status()
    (name,) = _new_files(prompts_dir, before)
    prompts = json.loads((prompts_dir / name).read_text())
    assert [p[-10:] for p in prompts] == ["first one"[-10:], "second one"]


def test_tokenize_writes_no_prompt(c, prompts_dir):
    before = set(os.listdir(prompts_dir))
    c.post("/tokenize", json={"content": "not a generation"}).raise_for_status()
    assert _new_files(prompts_dir, before) == []


# --- --sse-ping-interval ---

def test_stream_that_waits_gets_pings(srv):
    # One slot: the second prompt waits for the first, then reads ~600 tokens, which on a CPU takes
    # seconds; with one-second pings the wait shows as ":\n\n" comments between the events.
    long_prompt = " ".join(f"item {i} of the ping test list;" for i in range(80))
    body = json.dumps({"prompt": ["Hi", long_prompt], "n_predict": 1, "stream": True, "cache_prompt": False}).encode()
    t0 = time.time()
    status, _, rest = raw(srv, "POST", PREFIX + "/completion", {"Content-Type": "application/json"}, body)
    elapsed = time.time() - t0
    assert status == 200
    if elapsed < 2.5:
        pytest.skip(f"the stream took only {elapsed:.1f} s: no wait long enough to ping in")
    assert rest.count(b":\n\n") >= 1
    events = [json.loads(line[6:]) for line in rest.split(b"\n") if line.startswith(b"data: ")]
    assert sum(1 for e in events if e.get("stop")) == 2


# --- --path ---

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    www = root / "www"
    (www / "js").mkdir(parents=True)
    (www / "index.html").write_text("<h1>my own page</h1>")
    (www / "js" / "app.js").write_text("console.log('mine');")
    (www / "docs").mkdir()
    (www / "docs" / "index.html").write_text("docs index")
    (root / "secret.txt").write_text("outside the directory")
    return www


@pytest.fixture(scope="module")
def static_srv(request, site):
    return serve(request, "static", "--path", str(site), "--api-key", "sk-test", "-np", "1",
                 "-c", "512", *ONE_THREAD)


def test_path_serves_the_directory_instead_of_the_built_in_ui(static_srv):
    with static_srv.client() as c:
        index = c.get("/")
        assert index.status_code == 200 and index.text == "<h1>my own page</h1>"
        assert index.headers["content-type"].startswith("text/html")
        assert c.get("/index.html").text == index.text
        js = c.get("/js/app.js")
        assert js.status_code == 200 and js.text == "console.log('mine');" and "javascript" in js.headers["content-type"]
        assert c.get("/docs/").text == "docs index"
        assert c.head("/js/app.js").status_code == 200
        assert c.get("/js/app.js", headers={"If-None-Match": js.headers["etag"]}).status_code == 304
        # the built-in UI's files are gone; a missing file falls through to the routes
        built_in = re.findall(r'src="\./(assets/[^"]+)"', (pathlib_dist() / "index.html").read_text())
        assert built_in and c.get("/" + built_in[0]).status_code == 404
        missing = c.get("/nothing.txt")
        assert missing.status_code in (401, 404)


def test_path_files_are_public_the_api_is_not(static_srv):
    with static_srv.client() as c:
        assert c.get("/js/app.js").status_code == 200  # no key
        assert c.get("/props").status_code == 401
        assert c.get("/props", headers={"Authorization": "Bearer sk-test"}).status_code == 200


def test_path_does_not_escape_the_directory(static_srv):
    status, _, body = raw(static_srv, "GET", "/..%2fsecret.txt")
    assert status in (401, 404) and b"outside the directory" not in body
    status, _, body = raw(static_srv, "GET", "/js/..%2f..%2fsecret.txt")
    assert status in (401, 404) and b"outside the directory" not in body


def pathlib_dist():
    from llamaserve.api.webui import DIST

    return DIST


# --- --reuse-port ---

def _spawn(tmp_path, port: int, *args: str) -> LiveServer:
    log_path = os.path.join(str(tmp_path), f"server-{port}-{len(os.listdir(tmp_path))}.log")
    cmd = [sys.executable, "-m", "llamaserve", "-m", MODEL, "--port", str(port), "-np", "1", "-c", "512", *ONE_THREAD, *args]
    proc = subprocess.Popen(cmd, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    return LiveServer(proc, f"http://127.0.0.1:{port}", log_path)


def _wait_listening(srv: LiveServer, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if "server is listening" in srv.log():
            return
        if srv.proc.poll() is not None:
            raise AssertionError(f"exited with {srv.proc.returncode}:\n{srv.log()}")
        time.sleep(0.1)
    raise AssertionError(f"not listening:\n{srv.log()}")


def test_reuse_port_lets_two_servers_share_a_port(tmp_path):
    port = free_port()
    first = _spawn(tmp_path, port, "--reuse-port")
    second = third = None
    try:
        _wait_listening(first)
        second = _spawn(tmp_path, port, "--reuse-port")
        _wait_listening(second)
        assert httpx.get(first.url + "/health", timeout=30).status_code == 200
        # without the option a third cannot bind the port
        third = _spawn(tmp_path, port)
        assert third.proc.wait(90) != 0
        assert "address already in use" in third.log().lower() and "server is listening" not in third.log()
    finally:
        for s in (first, second, third):
            if s is not None:
                s.stop()


# --- --host with several addresses ---

def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_host_lists_several_addresses_and_a_unix_socket(tmp_path):
    """--host takes a comma-separated list, as llama-server's; each address serves the same model."""
    port = free_port()
    sock_path = str(tmp_path / "llamaserve.sock")
    hosts = ["127.0.0.1"] + (["::1"] if _ipv6_loopback() else []) + [sock_path]
    srv = _spawn(tmp_path, port, "--host", " , ".join(hosts))
    try:
        _wait_listening(srv)
        assert f"http://127.0.0.1:{port}" in srv.log() and f"unix://{sock_path}" in srv.log()
        urls = [f"http://127.0.0.1:{port}"] + ([f"http://[::1]:{port}"] if "::1" in hosts else [])
        for url in urls:
            r = httpx.post(url + "/completion", json={"prompt": "Hello", "n_predict": 2}, timeout=120)
            assert r.status_code == 200 and r.json()["tokens_predicted"] == 2
        with httpx.Client(transport=httpx.HTTPTransport(uds=sock_path)) as client:
            assert client.get("http://localhost/health", timeout=30).status_code == 200
    finally:
        srv.stop()


def test_host_that_cannot_be_bound_stops_start_up_naming_it(tmp_path):
    srv = _spawn(tmp_path, free_port(), "--host", "127.0.0.1,192.0.2.1")  # TEST-NET-1: not on this machine
    try:
        assert srv.proc.wait(90) != 0
        assert "192.0.2.1" in srv.log() and "server is listening" not in srv.log()
    finally:
        srv.stop()
