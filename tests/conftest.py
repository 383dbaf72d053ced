"""Shared fixtures: real llamaserve processes on the bundled SmolLM2 model, reached over real HTTP."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
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


def reference_numbers(section: str):
    """One section of shared/models/reference.json: the reference numbers of the shared models."""
    with open(shared_model("reference.json")) as fh:
        return json.load(fh)[section]


# For the servers that take many requests: one compute thread. On a machine whose cores are
# oversubscribed (CI runners, parallel test sessions) ggml's worker threads wait on each other and
# a decode step can take 100x longer with -t 2 than with -t 1.
ONE_THREAD = ("-t", "1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    proc: subprocess.Popen
    url: str
    log_path: str
    verify: ssl.SSLContext | bool = True  # trusts the certificate of an HTTPS server

    def client(self, prefix: str = "", **kw) -> httpx.Client:
        """An httpx client of this server (of its routes under `prefix`, an --api-prefix)."""
        return httpx.Client(base_url=self.url + prefix, timeout=kw.pop("timeout", 120), verify=self.verify, **kw)

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


_MODEL_FLAGS = {"-m", "--model", "-hf", "-hfr", "--hf-repo", "-mu", "--model-url"}  # the test names the model itself


def start_server(tmp_dir, *args: str, wait: bool = True, router: bool = False,
                 env: dict[str, str] | None = None) -> LiveServer:
    """A llamaserve subprocess on the bundled model (`-m` may name another), or with router=True
    a router (no -m: it serves the bundled model and any --models-dir / --models-preset models).
    `env` adds to the environment the server inherits. A router's Hugging Face cache is an empty
    directory unless `env` names one (LLAMA_CACHE), so that no model cached on the machine is listed."""
    port = free_port()
    log_path = os.path.join(str(tmp_dir), f"server-{port}.log")
    if router:
        env = {"LLAMA_CACHE": os.path.join(str(tmp_dir), "no-hf-cache"), **(env or {})}
    model = [] if router or set(args) & _MODEL_FLAGS else ["-m", MODEL]
    cmd = [sys.executable, "-m", "llamaserve", "--port", str(port), "-t", "2", *model, *args]
    proc = subprocess.Popen(cmd, stdout=open(log_path, "w"), stderr=subprocess.STDOUT,
                            env={**os.environ, **env} if env else None)
    cert = args[args.index("--ssl-cert-file") + 1] if "--ssl-cert-file" in args else None
    verify = ssl.create_default_context(cafile=cert) if cert else True
    server = LiveServer(proc, f"{'https' if cert else 'http'}://127.0.0.1:{port}", log_path, verify)
    return wait_healthy(server, "/health", timeout=60) if wait else server


def wait_healthy(srv: LiveServer, path: str = "/health", timeout: float = 90) -> LiveServer:
    """Wait until `path` (/health, or a prefixed one) answers 200; stops the server if it never does."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if srv.proc.poll() is not None:
            raise RuntimeError(f"server exited with {srv.proc.returncode}:\n{srv.log()}")
        try:
            if httpx.get(srv.url + path, timeout=1, verify=srv.verify).status_code == 200:
                return srv
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    srv.stop()
    raise RuntimeError(f"server did not become healthy:\n{srv.log()}")


def serve(request, where: str | os.PathLike, *args: str, **kw) -> LiveServer:
    """The server factory of the test fixtures: start_server(folder, *args, **kw), stopped when the fixture
    that asked for it (`request`, the fixture's own request, of any scope) is torn down. `where` names a
    fresh temporary folder (tmp_path_factory.mktemp), or is a folder the fixture made itself."""
    tmp = request.getfixturevalue("tmp_path_factory").mktemp(where) if isinstance(where, str) else where
    srv = start_server(tmp, *args, **kw)
    request.addfinalizer(srv.stop)
    return srv


@pytest.fixture(scope="session")
def server(request):
    """The main test server: 4 slots, 2048 tokens each."""
    return serve(request, "srv", "-np", "4", "-c", "8192")


@pytest.fixture(scope="session")
def derived_models(tmp_path_factory) -> pathlib.Path:
    """shared/models/derive_smollm2.py run once on the bundled SmolLM2: its FIM copy and 3-shard split."""
    script = shared_model("derive_smollm2.py")
    out = tmp_path_factory.mktemp("derived")
    subprocess.run([sys.executable, script, MODEL, str(out)], check=True, capture_output=True, timeout=300)
    return out


@pytest.fixture(scope="session")
def small_server(request):
    """One slot of 256 tokens, /slots disabled: context limits and disabled endpoints."""
    return serve(request, "small", "-np", "1", "-c", "256", "--no-slots", "-a", "tiny", "--cache-reuse", "8")


@pytest.fixture(scope="session")
def capped_server(request, tmp_path_factory):
    """Four slots, every generation capped at 4 tokens (--max-predict 4): for the hostile corpus and schemathesis,
    whose valid bodies may ask for any n_predict. Every optional route is on (slot files, metrics,
    POST /props: tests that need the defaults reset them with POST /props first)."""
    tmp = tmp_path_factory.mktemp("capped")
    slot_dir = tmp / "slot-files"
    slot_dir.mkdir()
    return serve(request, tmp, "-np", "4", "-c", "2048", "-n", "4", "--max-predict", "4", "--slot-save-path", str(slot_dir),
                 "--metrics", "--props", *ONE_THREAD)


@pytest.fixture()
def client(server):
    with server.client() as c:
        yield c


def self_signed_cert(directory) -> tuple[str, str]:
    """A throwaway self-signed certificate for 127.0.0.1 / localhost: (cert path, key path)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = os.path.join(str(directory), "cert.pem"), os.path.join(str(directory), "key.pem")
    with open(cert_path, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


def app_routes() -> list[tuple[str, str, dict]]:
    """(method, path, OpenAPI operation) for every route of the app, read from the app itself, so the
    tests that walk them (auth, hostile input, schemathesis) cover routes added later unchanged."""
    return [
        (method.upper(), path, operation)
        for path, item in sorted(app_openapi()["paths"].items())
        for method, operation in sorted(item.items())
    ]


def app_openapi() -> dict:
    from llamaserve.api.app import create_app
    from llamaserve.config import Config

    return create_app(Config(model=MODEL)).openapi()


def poll_until(check, what: str, deadline: float = 180) -> None:
    """Poll until `check()` is true. The deadline is no timing assertion: it only keeps a broken server
    from hanging the suite."""
    end = time.time() + deadline
    while not check():
        if time.time() > end:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def send_and_leave(base_url: str, path: str, body: bytes, headers: dict[str, str]) -> socket.socket:
    """A POST sent on a bare socket, its answer never read: closing the socket is a client that leaves."""
    url = urllib.parse.urlsplit(base_url)
    head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": url.netloc, "Content-Type": "application/json",
                                                 "Content-Length": str(len(body)), "Connection": "close", **headers}.items())
    sock = socket.create_connection((url.hostname, url.port))
    sock.sendall(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode() + body)
    return sock


def fill_path(path: str, value: str = "0") -> str:
    """/slots/{id_slot} -> /slots/0"""
    import re

    return re.sub(r"\{[^}]+\}", value, path)
