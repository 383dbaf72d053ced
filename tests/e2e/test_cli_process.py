"""The llamaserve command as a subprocess: start-up failures, --help, and an official SDK as client."""

from __future__ import annotations

import subprocess
import sys

import openai
import pytest

from tests.conftest import MODEL


def run_cli(*args, timeout=30):
    return subprocess.run([sys.executable, "-m", "llamaserve", *args], capture_output=True, text=True, timeout=timeout)


def test_help_documents_flags():
    r = run_cli("--help")
    assert r.returncode == 0
    for flag in ("--model", "--ctx-size", "--parallel", "--cont-batching", "--no-context-shift", "--slot-prompt-similarity",
                 "--flash-attn", "--cache-type-k", "--kv-unified", "--no-mmap", "--threads-http", "LLAMA_ARG_CTX_SIZE"):
        assert flag in r.stdout, flag


@pytest.mark.parametrize("args, fragment", [
    (("--no-such-flag",), "unrecognized"),
    (("-m", "/nonexistent/model.gguf"), "/nonexistent/model.gguf"),
    (("-m", MODEL, "-np", "zero"), "invalid integer"),
])
def test_startup_errors(args, fragment):
    r = run_cli(*args)
    assert r.returncode != 0 and fragment in r.stderr


def test_model_that_fails_to_load_exits_non_zero(tmp_path):
    bad = tmp_path / "truncated.gguf"
    bad.write_bytes(open(MODEL, "rb").read(1 << 16))  # a valid header, then nothing
    r = run_cli("-m", str(bad), "--port", "0", timeout=60)
    assert r.returncode != 0 and "truncated.gguf" in r.stderr


def test_openai_sdk_lists_the_model(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    ids = [m.id for m in client.models.list()]
    assert ids == ["SmolLM2-135M-Instruct.Q4_1.gguf"]


def test_request_log_line(server):
    import httpx

    httpx.post(server.url + "/completion", json={"prompt": "Hi", "n_predict": 3, "temperature": 0}, timeout=60)
    lines = [l for l in server.log().splitlines() if "POST /completion 200" in l]
    assert lines and "predicted=3" in lines[-1] and "ms" in lines[-1]
