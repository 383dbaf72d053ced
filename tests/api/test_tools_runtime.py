"""Tool runtimes (x-tool-runtime, --tools-runtime) without docker: a stand-in `docker` on PATH runs what
`docker exec [-i] ID CMD...` is given on this machine and logs each call, and `docker run` makes a
"container" that lives while its stdin is open. So the calls the server makes, and the container's life
(started before the server listens, gone after it stops), are what these tests check."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import serve, start_server

FAKE_DOCKER = r"""#!/bin/sh
echo "$*" >> "$FAKE_DOCKER_LOG"
case "$1" in
  exec)
    shift
    [ "$1" = "-i" ] && shift
    shift  # the container id
    exec "$@" ;;
  run)
    while [ "$1" != "--cidfile" ]; do shift; done
    echo "fakecid0123456789" > "$2"
    echo "running" > "$FAKE_DOCKER_LOG.state"
    cat > /dev/null  # the container's sh: it lives until its stdin closes
    echo "stopped" > "$FAKE_DOCKER_LOG.state" ;;
esac
"""


@pytest.fixture(scope="module")
def fake_docker(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fake-docker")
    script = folder / "docker"
    script.write_text(FAKE_DOCKER)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    log = folder / "calls.log"
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}", "FAKE_DOCKER_LOG": str(log)}, log


def call(srv, tool, params, headers=None):
    return httpx.post(srv.url + "/tools", json={"tool": tool, "params": params}, headers=headers, timeout=60)


def test_calls_with_a_runtime_header_run_in_that_container(request, fake_docker, tmp_path):
    env, log = fake_docker
    root = tmp_path / "host-root"
    root.mkdir()
    # the server's own runtime is another container: a call's header picks the one it runs in
    srv = serve(request, root, "--tools", "all", "--tools-runtime", "docker-container:default1", router=True, env=env)
    inside = tmp_path / "container-fs"  # outside the host root: the container's paths are its own
    inside.mkdir()
    headers = {"x-tool-runtime": "docker-container:abc123", "x-tool-cwd": str(inside)}
    assert call(srv, "write_file", {"path": "test.log", "content": "hello container\n"}, headers).json()["result"] == "file written successfully"
    assert (inside / "test.log").read_text() == "hello container\n"
    assert call(srv, "read_file", {"path": "test.log"}, headers).json() == {"plain_text_response": "hello container\n"}
    assert "hello container" in call(srv, "exec_shell_command", {"command": "cat test.log"}, headers).json()["plain_text_response"]
    assert [e["path"] for e in call(srv, "file_glob_search", {"path": "."}, headers).json()["entries"]] == ["test.log"]
    assert "Total matches: 1" in call(srv, "grep_search", {"path": ".", "pattern": "hello"}, headers).json()["plain_text_response"]
    calls = log.read_text().splitlines()
    assert all(line.startswith("exec ") and " abc123 " in f"{line} " for line in calls)
    # the command runs under the isolate's own timeout, in the header's directory
    assert any(line.startswith(f"exec -i abc123 sh -c") and str(inside) in line and "timeout 10s sh -c cat test.log" in line for line in calls)


def test_tools_runtime_image_runs_a_container_of_its_own_for_the_servers_life(fake_docker, tmp_path):
    env, log = fake_docker
    srv = start_server(tmp_path, "--tools", "exec_shell_command", "--tools-runtime", "docker:busybox", router=True, env=env)
    try:
        state_file = f"{log}.state"
        assert open(state_file).read().strip() == "running"  # started before the server answered
        out = call(srv, "exec_shell_command", {"command": "echo inside"}).json()["plain_text_response"]
        assert out.startswith("inside\n")
        assert any(line.startswith("exec -i fakecid0123456789 timeout 10s sh -c echo inside") for line in log.read_text().splitlines())
    finally:
        srv.stop()
    deadline = time.time() + 5
    while open(f"{log}.state").read().strip() != "stopped" and time.time() < deadline:
        time.sleep(0.1)
    assert open(f"{log}.state").read().strip() == "stopped"  # the server closed its stdin at exit


def test_a_runtime_that_cannot_start_stops_start_up(tmp_path):
    env = {"PATH": str(tmp_path)}  # no docker anywhere
    r = subprocess.run([sys.executable, "-m", "llamaserve", "--port", "0", "--tools", "all", "--tools-runtime", "docker:busybox"],
                       capture_output=True, text=True, timeout=60, env={**os.environ, **env})
    assert r.returncode != 0 and "cannot start the docker tools runtime" in r.stdout + r.stderr


def test_a_runtime_header_is_refused_where_the_server_has_no_runtime(request, fake_docker, tmp_path):
    env, log = fake_docker
    srv = serve(request, tmp_path, "--tools", "all", "--tools-root", str(tmp_path), router=True, env=env)
    calls_before = log.read_text() if log.exists() else ""
    r = call(srv, "read_file", {"path": "/etc/hostname"}, {"x-tool-runtime": "docker-container:abc123"})
    assert r.status_code == 403 and "start it with --tools-runtime" in r.json()["error"]["message"]
    assert (log.read_text() if log.exists() else "") == calls_before  # docker was never run
    # checked as llama-server checks it first: an injection attempt still reads as one
    r = call(srv, "read_file", {"path": "x"}, {"x-tool-runtime": "ssh:-oProxyCommand=id"})
    assert r.status_code == 500 and "invalid ssh target" in r.json()["error"]["message"]
