"""MCP servers behind /tools (tests/mcp_test_server.py, on the official SDK, over stdio): their tools listed
as <server>_<tool> and called, several servers at once, a server that crashes started again, one that
cannot start reported while the rest works, timeouts, configuration errors, a prompt stop."""

from __future__ import annotations

import concurrent.futures
import json
import pathlib
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import free_port, serve, start_server

SERVER = str(pathlib.Path(__file__).parent.parent / "mcp_test_server.py")


def mcp_json(**servers) -> str:
    return json.dumps({"mcpServers": servers})


def stdio(*args: str, **extra) -> dict:
    return {"command": sys.executable, "args": [SERVER, *args], **extra}


def call(srv, tool, params=None, timeout=60):
    r = httpx.post(srv.url + "/tools", json={"tool": tool, "params": params or {}}, timeout=timeout)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def mcp_router(request):
    config = mcp_json(alpha=stdio("--name", "alpha"), beta=stdio("--name", "beta", timeout_ms=1500),
                      broken={"command": "no-such-mcp-server-binary"}, empty=stdio("--no-tools"))
    return serve(request, "mcp", "--mcp-servers-json", config, router=True)


def test_the_tools_of_several_servers_are_listed_and_called(mcp_router):
    tools = {t["tool"]: t for t in httpx.get(mcp_router.url + "/tools").json()}
    for server in ("alpha", "beta"):
        assert {f"{server}_{n}" for n in ("echo", "add", "slow", "crash", "whoami")} <= set(tools)
    assert not any(name.startswith(("broken_", "empty_")) for name in tools)
    echo = tools["alpha_echo"]
    assert echo["type"] == "mcp" and echo["permissions"] == {"write": False}
    fn = echo["definition"]["function"]
    assert fn["name"] == "alpha_echo" and fn["description"] == "Say the message back."
    assert fn["parameters"]["type"] == "object" and "message" in fn["parameters"]["properties"]
    assert call(mcp_router, "alpha_echo", {"message": "hi"}) == {"plain_text_response": "alpha: hi"}
    assert call(mcp_router, "beta_echo", {"message": "hi"}) == {"plain_text_response": "beta: hi"}
    assert call(mcp_router, "alpha_add", {"a": 2, "b": 40}) == {"plain_text_response": "42"}


def test_a_tool_error_is_the_models_to_read(mcp_router):
    assert "error" in call(mcp_router, "alpha_add", {"a": "two", "b": 1})


def test_concurrent_calls_all_get_their_own_answer(mcp_router):
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: call(mcp_router, "alpha_echo", {"message": str(i)}), range(16)))
    assert answers == [{"plain_text_response": f"alpha: {i}"} for i in range(16)]


def test_a_server_that_cannot_start_is_reported_and_the_rest_works(mcp_router):
    status = {s["name"]: s for s in httpx.get(mcp_router.url + "/tools/mcp").json()["servers"]}
    assert status["broken"]["state"] == "failed" and "no-such-mcp-server-binary" in status["broken"]["error"]
    assert status["alpha"]["state"] == "running" and "alpha_echo" in status["alpha"]["tools"]
    assert status["empty"]["state"] == "running" and status["empty"]["tools"] == []
    assert "MCP server 'broken' failed to start" in mcp_router.log()
    assert call(mcp_router, "alpha_echo", {"message": "still here"})["plain_text_response"] == "alpha: still here"


def test_a_server_that_could_not_start_is_tried_again_when_tools_are_listed(request, tmp_path):
    late = tmp_path / "late-server"
    srv = serve(request, tmp_path, "--mcp-servers-json", mcp_json(late={"command": str(late)}), router=True)
    assert httpx.get(srv.url + "/tools/mcp").json()["servers"][0]["state"] == "failed"
    late.write_text(f"#!/bin/sh\nexec {sys.executable} {SERVER} --name late\n")
    late.chmod(0o755)
    deadline = time.time() + 30
    while time.time() < deadline:
        if "late_echo" in [t["tool"] for t in httpx.get(srv.url + "/tools").json()]:
            break
        time.sleep(0.5)
    assert call(srv, "late_echo", {"message": "finally"}) == {"plain_text_response": "late: finally"}


def test_a_crashed_server_is_started_again_on_the_next_call(mcp_router):
    before = call(mcp_router, "beta_whoami")["plain_text_response"]
    assert "error" in call(mcp_router, "beta_crash")
    after = call(mcp_router, "beta_whoami")["plain_text_response"]
    assert after.isdigit() and after != before
    assert "MCP server 'beta'" in mcp_router.log() and httpx.get(mcp_router.url + "/health").status_code == 200


def test_a_slow_call_times_out_and_the_server_stays_usable(mcp_router):
    t0 = time.monotonic()
    res = call(mcp_router, "beta_slow", {"seconds": 10})
    assert "timed out after 1500 ms" in res["error"] and time.monotonic() - t0 < 6
    assert call(mcp_router, "beta_echo", {"message": "after"}) == {"plain_text_response": "beta: after"}


def test_mcp_servers_from_a_config_file_on_a_model_server(request, tmp_path):
    path = tmp_path / "mcp.json"
    path.write_text(mcp_json(files=stdio("--name", "files")))
    srv = serve(request, tmp_path, "-np", "1", "-c", "256", "--mcp-servers-config", str(path), "--tools", "get_info")
    names = [t["tool"] for t in httpx.get(srv.url + "/tools").json()]
    assert names[0] == "get_info" and "files_echo" in names
    assert call(srv, "files_echo", {"message": "x"}) == {"plain_text_response": "files: x"}


@pytest.fixture()
def http_mcp_servers(request):
    """The test server over streamable HTTP and over SSE, on loopback ports: {"http": url, "sse": url}."""
    urls = {}
    for kind, path in (("http", "/mcp"), ("sse", "/sse")):
        port = free_port()
        proc = subprocess.Popen([sys.executable, SERVER, "--name", kind, f"--{kind}", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        request.addfinalizer(lambda p=proc: (p.terminate(), p.wait(10)))
        urls[kind] = f"http://127.0.0.1:{port}{path}"
    for url in urls.values():
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                httpx.get(url.rsplit("/", 1)[0] + "/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
    return urls


def test_servers_reached_over_http_and_sse(request, http_mcp_servers):
    config = mcp_json(remote={"url": http_mcp_servers["http"]}, old={"url": http_mcp_servers["sse"], "type": "sse"})
    srv = serve(request, "mcp-http", "--mcp-servers-json", config, router=True)
    status = {s["name"]: s for s in httpx.get(srv.url + "/tools/mcp").json()["servers"]}
    assert status["remote"]["transport"] == "http" and status["remote"]["state"] == "running", status
    assert status["old"]["transport"] == "sse" and status["old"]["state"] == "running", status
    assert call(srv, "remote_echo", {"message": "over http"}) == {"plain_text_response": "http: over http"}
    assert call(srv, "old_add", {"a": 1, "b": 2}) == {"plain_text_response": "3"}


def test_stopping_the_server_during_a_slow_call_is_prompt(tmp_path):
    srv = start_server(tmp_path, "--mcp-servers-json", mcp_json(slow=stdio()), router=True)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(lambda: httpx.post(srv.url + "/tools", json={"tool": "slow_slow", "params": {"seconds": 20}}, timeout=30))
        time.sleep(1.5)
        t0 = time.monotonic()
        srv.proc.terminate()
        srv.proc.wait(10)
        assert time.monotonic() - t0 < 3
        try:
            r = pending.result(10)
            assert r.status_code == 200 and "shutting down" in r.json()["error"]
        except httpx.HTTPError:
            pass  # the connection may close before the answer
    assert "Traceback" not in srv.log()


@pytest.mark.parametrize("args, message", [
    (["--mcp-servers-json", "not valid json"], "invalid JSON"),
    (["--mcp-servers-config", "/nonexistent/mcp.json"], "failed to open MCP config file"),
    (["--mcp-servers-json", '{"mcpServers": {"x": {"command": "a", "args": "b"}}}'], "args must be an array"),
    (["--mcp-servers-json", '{"mcpServers": {"x": {"command": "a", "timeout_ms": 0}}}'], "timeout_ms"),
])
def test_bad_mcp_configurations_stop_start_up(args, message):
    r = subprocess.run([sys.executable, "-m", "llamaserve", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and message in r.stderr
