"""HTTPS with a self-signed certificate made in the test; a bad key or certificate stops the server at start."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from tests.conftest import self_signed_cert, start_server


def test_https(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    server = start_server(tmp_path, "-np", "1", "-c", "512", "--ssl-cert-file", cert, "--ssl-key-file", key,
                          "--api-key", "sk-tls")
    try:
        assert server.url.startswith("https://")
        with server.client(headers={"Authorization": "Bearer sk-tls"}) as c:
            r = c.post("/completion", json={"prompt": "Hello", "n_predict": 2, "temperature": 0})
            assert r.status_code == 200 and r.json()["tokens_predicted"] == 2
        with pytest.raises(httpx.ConnectError):  # the certificate is not trusted without our CA file
            httpx.get(server.url + "/health", timeout=30)
        with pytest.raises(httpx.HTTPError):  # plain HTTP gets no answer on the TLS port
            httpx.get(server.url.replace("https://", "http://") + "/health", timeout=30)
        assert "listening on https://" in server.log()
    finally:
        server.stop()


def test_bad_certificate_exits_with_a_message(tmp_path):
    cert, _ = self_signed_cert(tmp_path)
    bad_key = tmp_path / "bad-key.pem"
    bad_key.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    r = subprocess.run([sys.executable, "-m", "llamaserve", "--port", "0", "--ssl-cert-file", cert, "--ssl-key-file", str(bad_key)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "cannot use TLS certificate" in r.stderr and "bad-key.pem" in r.stderr
