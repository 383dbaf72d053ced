"""api/header_names.py: llama-server's spelling, and names that uvicorn's writer still recognises."""

from __future__ import annotations

from llamaserve.api.header_names import HeaderName, spell


def test_spelling():
    assert spell(b"access-control-allow-origin") == b"Access-Control-Allow-Origin"
    assert bytes(spell(b"process-start-time-unix")) == b"Process-Start-Time-Unix"
    assert bytes(spell(b"x-accel-buffering")) == b"X-Accel-Buffering"
    assert bytes(spell(b"etag")) == b"ETag" and bytes(spell(b"www-authenticate")) == b"WWW-Authenticate"
    assert bytes(spell(b"Content-Type")) == b"Content-Type"


def test_passes_for_its_lowercase_form():
    name = spell(b"content-length")
    assert isinstance(name, HeaderName) and isinstance(name, bytes)
    # what uvicorn's httptools writer does with each name before it writes it
    lowered = name.lower()
    assert lowered == b"content-length" and b"content-length" == lowered
    assert b"".join([lowered, b": ", b"3"]) == b"Content-Length: 3"
    assert lowered != b"transfer-encoding"
    assert {name: 1}.get(b"content-length") == 1
