"""Shared fixtures: real llamaserve processes on the bundled SmolLM2 model, reached over real HTTP."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx
import pytest

from llamaserve.config import bundled_model_path

MODEL = str(bundled_model_path())


def _find_shared_models() -> pathlib.Path | None:
    """The project's shared/models (real test models, see its README): beside the checkout, or above it."""
    env = os.environ.get("LLAMASERVE_TEST_MODELS")
    if env:
        return pathlib.Path(env)
    for parent in pathlib.Path(__file__).resolve().parents[1:]:
        if (parent / "shared" / "models" / "reference.json").is_file():
            return parent / "shared" / "models"
    return None


SHARED_MODELS = _find_shared_models()


def shared_model(name: str) -> str:
    """Path of a file in shared/models; skips the test when the folder is not there."""
    if SHARED_MODELS is None or not (SHARED_MODELS / name).is_file():
        pytest.skip(f"shared/models/{name} not found (set LLAMASERVE_TEST_MODELS)")
    return str(SHARED_MODELS / name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    proc: subprocess.Popen
    url: str
    log_path: str

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kw.pop("timeout", 120), **kw)

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_server(tmp_dir, *args: str, wait: bool = True, router: bool = False) -> LiveServer:
    """A llamaserve subprocess on the bundled model (`-m` may name another), or with router=True
    a router (no -m: it serves the bundled model and any --models-dir / --models-preset models)."""
    port = free_port()
    log_path = os.path.join(str(tmp_dir), f"server-{port}.log")
    model = [] if router or "-m" in args or "--model" in args else ["-m", MODEL]
    cmd = [sys.executable, "-m", "llamaserve", "--port", str(port), "-t", "2", *model, *args]
    proc = subprocess.Popen(cmd, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    server = LiveServer(proc, f"http://127.0.0.1:{port}", log_path)
    if wait:
        deadline = time.time() + 60
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log()}")
            try:
                if httpx.get(server.url + "/health", timeout=1).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        server.stop()
        raise RuntimeError(f"server did not become healthy:\n{server.log()}")
    return server


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """The main test server: 4 slots, 2048 tokens each."""
    srv = start_server(tmp_path_factory.mktemp("srv"), "-np", "4", "-c", "8192")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def derived_models(tmp_path_factory) -> pathlib.Path:
    """shared/models/derive_smollm2.py run once on the bundled SmolLM2: its FIM copy and 3-shard split."""
    script = shared_model("derive_smollm2.py")
    out = tmp_path_factory.mktemp("derived")
    subprocess.run([sys.executable, script, MODEL, str(out)], check=True, capture_output=True, timeout=300)
    return out


@pytest.fixture(scope="session")
def small_server(tmp_path_factory):
    """One slot of 256 tokens, /slots disabled: context limits and disabled endpoints."""
    srv = start_server(tmp_path_factory.mktemp("small"), "-np", "1", "-c", "256", "--no-slots", "-a", "tiny", "--cache-reuse", "8")
    yield srv
    srv.stop()


@pytest.fixture()
def client(server):
    with server.client() as c:
        yield c
