"""ggml RPC on loopback: `llamaserve rpc-server` processes lend their devices to a server started with
--rpc, which splits the bundled model's layers over them and answers as a local server does; a lost
RPC server ends the requests in flight with a 500 naming it, /health turns 503, and the process exits 1."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest

from llamaserve.engine import rpc
from tests.conftest import MODEL, free_port, serve


@pytest.fixture(autouse=True)
def rpc_build():
    # the README's install builds llama-cpp-python with RPC: without it these fail (they do not skip)
    if not rpc.available():
        pytest.fail(rpc.HOW_TO_GET_RPC)


PROMPT = {"prompt": "The three primary colours are", "n_predict": 24, "temperature": 0, "cache_prompt": False}


def start_rpc_server(tmp_path, host: str = "127.0.0.1") -> tuple[subprocess.Popen, str, str]:
    """(process, endpoint, log path) of a `llamaserve rpc-server` on a free loopback port, once it accepts."""
    port = free_port()
    log_path = tmp_path / f"rpc-{port}.log"
    proc = subprocess.Popen([sys.executable, "-m", "llamaserve", "rpc-server", "-H", host, "-p", str(port), "-t", "1"],
                            stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    endpoint = f"{host}:{port}"
    deadline = time.time() + 30
    while rpc.reachable(endpoint, timeout=0.5) is not None:
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError(f"rpc-server did not start:\n{log_path.read_text()}")
        time.sleep(0.1)
    return proc, endpoint, str(log_path)


@pytest.fixture
def rpc_servers(tmp_path):
    started = [start_rpc_server(tmp_path) for _ in range(2)]
    yield started
    for proc, _, _ in started:
        proc.kill()
        proc.wait(10)


def test_layers_split_over_two_rpc_servers_answer_as_a_local_server(request, rpc_servers):
    endpoints = [e for _, e, _ in rpc_servers]
    local = serve(request, "local", "-np", "1")
    remote = serve(request, "remote", "-np", "1", "--rpc", ",".join(endpoints))
    want = httpx.post(local.url + "/completion", json=PROMPT, timeout=120).json()["content"]
    got = httpx.post(remote.url + "/completion", json=PROMPT, timeout=120).json()["content"]
    assert got == want and want.strip()
    devices = httpx.get(remote.url + "/props").json()["devices"]
    assert devices["rpc_servers"] == endpoints
    by_server = {d["description"]: d["n_layers"] for d in devices["layers"]}
    # SmolLM2 has 30 blocks and an output layer: ggml splits them by the servers' free memory
    assert set(by_server) == set(endpoints) and all(n > 0 for n in by_server.values())
    assert sum(by_server.values()) == devices["n_layers_offloaded"] == devices["n_layers_offloadable"] == 31
    assert any(name.startswith("RPC") for name in devices["buffers_mib"])
    assert "layers by device: RPC0 (%s)" % endpoints[0] in remote.log()
    assert "RPC: keepalive on 2 connections" in remote.log()  # ggml's connections, one per server, found and set
    # the servers saw the client (ggml's rpc-server logs each connection)
    assert all("Accepted client connection" in open(log).read() for _, _, log in rpc_servers)


@pytest.mark.parametrize("flags, want", [
    (("-ts", "3,1"), lambda a, b: a > 2 * b > 0),  # three quarters of the layers on the first
    (("-dev", "RPC1"), lambda a, b: a == 0 and b == 31),  # only the second server's device
    (("-ngl", "10"), lambda a, b: a + b == 10),  # the other 21 layers stay on the CPU
])
def test_split_options_act_on_the_rpc_devices(request, rpc_servers, flags, want):
    endpoints = [e for _, e, _ in rpc_servers]
    srv = serve(request, "split", "-np", "1", "--rpc", ",".join(endpoints), *flags)
    layers = {d["description"]: d["n_layers"] for d in httpx.get(srv.url + "/props").json()["devices"]["layers"]}
    a, b = layers.get(endpoints[0], 0), layers.get(endpoints[1], 0)
    assert want(a, b), layers
    assert httpx.post(srv.url + "/completion", json=PROMPT, timeout=120).json()["content"].strip()


def test_a_lost_rpc_server_fails_the_requests_in_flight_and_the_process_exits(request, rpc_servers):
    endpoints = [e for _, e, _ in rpc_servers]
    srv = serve(request, "lost", "-np", "2", "--rpc", ",".join(endpoints))
    long = {"prompt": "Write a long story about a lighthouse keeper.", "n_predict": 2000, "ignore_eos": True, "temperature": 0}
    with httpx.Client(base_url=srv.url, timeout=60) as client, \
            client.stream("POST", "/completion", json={**long, "stream": True}) as stream:
        lines = stream.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        assert json.loads(first[6:])["content"] is not None  # generating, over RPC
        killed = rpc_servers[1]
        killed[0].kill()
        t0 = time.monotonic()
        events = [json.loads(line[6:]) for line in lines if line.startswith("data: ") and line != "data: [DONE]"]
    error = events[-1]["error"]
    assert error["code"] == 500 and error["type"] == "server_error"
    assert f"the RPC server {killed[1]} stopped answering" in error["message"]
    # until it exits, /health and new requests say why with a 503
    health = httpx.get(srv.url + "/health", timeout=5)
    assert health.status_code == 503 and killed[1] in health.json()["error"]["message"]
    assert srv.proc.wait(20) == 1
    assert time.monotonic() - t0 < 20
    assert f"exiting: the RPC server {killed[1]} stopped answering" in srv.log()


def test_rpc_to_a_closed_port_stops_start_up():
    port = free_port()
    r = subprocess.run([sys.executable, "-m", "llamaserve", "-m", MODEL, "--port", "0", "--rpc", f"127.0.0.1:{port}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert f"cannot reach the RPC server 127.0.0.1:{port}: Connection refused" in r.stderr


def test_list_devices_shows_the_rpc_servers_devices(rpc_servers):
    endpoints = [e for _, e, _ in rpc_servers]
    r = subprocess.run([sys.executable, "-m", "llamaserve", "--rpc", ",".join(endpoints), "--list-devices"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"RPC0: {endpoints[0]}" in r.stdout and f"RPC1: {endpoints[1]}" in r.stdout


def test_rpc_server_warns_when_bound_beyond_127_0_0_1(tmp_path):
    proc, endpoint, log = start_rpc_server(tmp_path, "127.0.0.2")  # still loopback, but not the default
    try:
        assert "no authentication" in open(log).read()
    finally:
        proc.kill()
        proc.wait(10)
    r = subprocess.run([sys.executable, "-m", "llamaserve", "rpc-server", "-d", "NoSuchDevice"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "unknown device: NoSuchDevice" in r.stderr
