"""The built-in tools through HTTP (GET/POST /tools), on the router and on a model server: calls, streamed
command output, the working-directory header inside --tools-root, hostile paths refused while the server
goes on, the API key on every tool route, CORS limited to localhost, one log line per call."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from tests.conftest import serve, start_server
from tests.helpers import assert_error


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """root/ (the tools' root) with proj/ in it; outside/ beside it, and a symlink from root/ to it."""
    base = tmp_path_factory.mktemp("tools")
    root, outside = base / "root", base / "outside"
    (root / "proj").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret\n")
    (root / "proj" / "hello.txt").write_text("hello tools\n")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    return root, outside


@pytest.fixture(scope="module")
def tools_router(request, workspace):
    root, _ = workspace
    return serve(request, "tools-router", "--tools", "all", "--tools-root", str(root), router=True)


def call(srv, tool, params, headers=None, **kw):
    return httpx.post(srv.url + "/tools", json={"tool": tool, "params": params, **kw}, headers=headers, timeout=60)


def test_tools_are_listed_with_their_definitions(tools_router):
    tools = httpx.get(tools_router.url + "/tools").json()
    names = [t["tool"] for t in tools]
    assert names == ["read_file", "file_glob_search", "grep_search", "exec_shell_command", "write_file", "edit_file", "get_info"]
    shell = tools[3]
    assert shell["permissions"] == {"write": True} and shell["type"] == "server"
    assert shell["definition"]["function"]["parameters"]["required"] == ["command"]


def test_write_read_edit_in_the_header_working_directory(tools_router, workspace):
    root, _ = workspace
    cwd = {"x-tool-cwd": "proj"}  # relative to the root
    assert call(tools_router, "write_file", {"path": "sub/new.txt", "content": "a\nb\n"}, cwd).json()["result"] == "file written successfully"
    assert (root / "proj" / "sub" / "new.txt").read_text() == "a\nb\n"
    r = call(tools_router, "edit_file", {"path": "sub/new.txt", "edits": [{"old_text": "b", "new_text": "c"}]}, cwd)
    assert r.json()["edits_applied"] == 1
    # a model's own "cwd" parameter is ignored: only the header sets it
    r = call(tools_router, "read_file", {"path": "sub/new.txt", "cwd": "/"}, cwd)
    assert r.json() == {"plain_text_response": "a\nc\n"}
    assert call(tools_router, "edit_file", {"path": "sub/new.txt", "edits": [{"old_text": "zz", "new_text": "c"}]}, cwd).json()["error"]


@pytest.mark.parametrize("path", ["../outside/secret.txt", "escape/secret.txt", "ABSOLUTE", "proj/../../outside/secret.txt"])
def test_paths_out_of_the_root_are_refused_and_the_server_goes_on(tools_router, workspace, path):
    root, outside = workspace
    path = str(outside / "secret.txt") if path == "ABSOLUTE" else path
    for tool, params in (("read_file", {"path": path}), ("write_file", {"path": path, "content": "pwned"}),
                         ("grep_search", {"path": path, "pattern": "secret"})):
        assert_error(call(tools_router, tool, params), 403, "permission_error", "outside the directory")
    assert (outside / "secret.txt").read_text() == "top secret\n"
    assert httpx.get(tools_router.url + "/health").status_code == 200


def test_a_working_directory_header_out_of_the_root_is_refused(tools_router, workspace):
    _, outside = workspace
    for cwd in (str(outside), "..", "escape"):
        assert_error(call(tools_router, "read_file", {"path": "secret.txt"}, {"x-tool-cwd": cwd}), 403, "permission_error")
    assert_error(call(tools_router, "read_file", {"path": "x"}, {"x-tool-cwd": "proj/hello.txt"}), 400, "invalid_request_error", "not a directory")


def test_bad_calls_get_clear_errors(tools_router):
    assert_error(call(tools_router, "no_such_tool", {}), 404, "invalid_request_error", 'unknown tool "no_such_tool"')
    assert_error(call(tools_router, "read_file", {"path": "proj/hello.txt"}, stream=True), 404, "invalid_request_error", "stream")
    assert_error(call(tools_router, "read_file", {}), 400, "invalid_request_error", "missing parameter 'path'")
    assert_error(call(tools_router, "read_file", {"path": 7}), 400, "invalid_request_error", "'path' must be of type str")
    assert_error(httpx.post(tools_router.url + "/tools", content=b"{nope"), 400, "invalid_request_error", "invalid JSON")
    assert_error(httpx.post(tools_router.url + "/tools", json={"params": {}}), 400, "invalid_request_error", "'tool'")
    assert_error(httpx.post(tools_router.url + "/tools", json={"tool": "read_file", "params": []}), 400, "invalid_request_error")


def test_shell_output_streams_and_runs_in_the_working_directory(tools_router, workspace):
    root, _ = workspace
    body = {"tool": "exec_shell_command", "params": {"command": "pwd; echo one; sleep 0.3; echo two >&2; exit 3"}, "stream": True}
    events = []
    with httpx.stream("POST", tools_router.url + "/tools", json=body, headers={"x-tool-cwd": "proj"}, timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    assert events[-1] == {"done": True}
    text = "".join(e["chunk"] for e in events[:-1])
    assert len(events) >= 3  # the output came in pieces, as it was written
    assert text.splitlines()[0] == os.path.realpath(root / "proj")
    assert "one\ntwo\n" in text and text.endswith("[exit code: 3]")


def test_a_streamed_call_refused_before_it_runs_is_a_plain_error(tools_router):
    r = call(tools_router, "exec_shell_command", {"command": "echo hi"}, {"x-tool-cwd": ".."}, stream=True)
    assert r.headers["content-type"].startswith("application/json")
    assert_error(r, 403, "permission_error", "outside the directory")


def test_a_shell_command_is_stopped_at_its_timeout(tools_router):
    r = call(tools_router, "exec_shell_command", {"command": "echo start; sleep 30", "timeout": 1})
    text = r.json()["plain_text_response"]
    assert text.startswith("start\n") and "[exit due to timed out]" in text


def test_an_unknown_or_injected_runtime_is_refused(tools_router):
    for runtime, message in (("fake:x", "unknown tool runtime"), ("ssh:-oProxyCommand=touch /tmp/pwned", "invalid ssh target"),
                             ("docker-container:--privileged", "invalid container id"), ("podman:busybox", "must name a running container")):
        assert_error(call(tools_router, "exec_shell_command", {"command": "echo hi"}, {"x-tool-runtime": runtime}), 500, "server_error", message)


def test_each_call_is_one_log_line(tools_router):
    call(tools_router, "read_file", {"path": "proj/hello.txt"})
    lines = [line for line in tools_router.log().splitlines() if "tool read_file path='proj/hello.txt'" in line]
    assert lines and lines[-1].rstrip().endswith("ms)") and "-> ok" in lines[-1]


def test_cors_origins_default_to_localhost_with_tools(tools_router):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "Authorization"}
    ok = httpx.options(tools_router.url + "/tools", headers={"Origin": "http://localhost:5173", **preflight})
    assert ok.headers.get("access-control-allow-origin") == "http://localhost:5173"
    evil = httpx.options(tools_router.url + "/tools", headers={"Origin": "http://evil.example", **preflight})
    assert "access-control-allow-origin" not in evil.headers


def test_tools_are_off_unless_named(request):
    srv = serve(request, "no-tools", router=True)
    assert_error(httpx.get(srv.url + "/tools"), 403, "feature_disabled", "disabled")
    assert_error(call(srv, "exec_shell_command", {"command": "echo hi"}), 403, "feature_disabled")


def test_only_the_named_tools_are_offered(request, tmp_path):
    srv = serve(request, tmp_path, "--tools", "read_file,get_info", "--tools-root", str(tmp_path), router=True)
    assert [t["tool"] for t in httpx.get(srv.url + "/tools").json()] == ["read_file", "get_info"]
    assert_error(call(srv, "exec_shell_command", {"command": "echo hi"}), 404, "invalid_request_error", "unknown tool")
    assert call(srv, "get_info", {}).json()["cwd"] == os.path.realpath(tmp_path)


def test_a_model_server_serves_the_tools_under_its_api_key(request, tmp_path):
    srv = serve(request, tmp_path, "-np", "1", "-c", "256", "--tools", "read_file", "--tools-root", str(tmp_path),
                "--api-key", "sk-tools")
    (tmp_path / "a.txt").write_text("a\n")
    assert_error(httpx.get(srv.url + "/tools"), 401, "authentication_error")
    assert_error(call(srv, "read_file", {"path": "a.txt"}), 401, "authentication_error")
    assert_error(httpx.get(srv.url + "/tools/mcp"), 401, "authentication_error")
    auth = {"Authorization": "Bearer sk-tools"}
    assert httpx.get(srv.url + "/tools", headers=auth).status_code == 200
    assert call(srv, "read_file", {"path": "a.txt"}, auth).json() == {"plain_text_response": "a\n"}


@pytest.mark.parametrize("args, message", [
    (["--tools", "read_file,bogus"], 'unknown tool "bogus"'),
    (["--tools", "all", "--tools-runtime", "ssh:-oProxyCommand=x"], "invalid ssh target"),
    (["--tools", "all", "--tools-runtime", "vm:thing"], "unknown --tools-runtime option"),
])
def test_bad_tool_options_stop_start_up(args, message):
    r = subprocess.run([sys.executable, "-m", "llamaserve", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and message in r.stderr
