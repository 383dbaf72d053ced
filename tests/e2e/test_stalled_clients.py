"""Clients that stall, against -to/--timeout (api/timeouts.py) and the bounded stream buffer (api/bridge.py):
a connection that sends an incomplete request, or nothing, is closed at the timeout; a client that stops
reading its stream loses its response at the timeout and its slot at once, and other clients go on."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from tests.conftest import poll_until, serve

TIMEOUT_S = 3


@pytest.fixture(scope="module")
def timed(request):
    return serve(request, "timeout", "-np", "2", "-to", str(TIMEOUT_S))


def _address(srv) -> tuple[str, int]:
    host, port = srv.url.removeprefix("http://").split(":")
    return host, int(port)


def _connect(srv) -> socket.socket:
    return socket.create_connection(_address(srv))


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed sock (reading and dropping whatever it sent); fails past `seconds`."""
    sock.settimeout(seconds)
    t0 = time.monotonic()
    while sock.recv(65536):
        pass
    return time.monotonic() - t0


@pytest.mark.parametrize("sent", [
    b"",  # connects and says nothing
    b"POST /completion HTTP/1.1\r\nHost: x\r\n",  # headers never finished (slowloris)
    b"POST /completion HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"prompt\"",
])
def test_an_incomplete_request_is_dropped_at_the_timeout(timed, sent):
    with _connect(timed) as sock:
        sock.sendall(sent)
        took = _closed_within(sock, TIMEOUT_S + 10)
    assert took >= TIMEOUT_S - 0.5
    assert "sent no complete request within 3 s (--timeout): connection closed" in timed.log()
    assert httpx.get(timed.url + "/health").status_code == 200


def test_a_slow_but_steady_sender_is_not_dropped(timed):
    """The timeout is per read, as llama-server's: a body that keeps arriving is waited for."""
    body = json.dumps({"prompt": "Hello", "n_predict": 4}).encode()
    with _connect(timed) as sock:
        sock.sendall(b"POST /completion HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
        for i in range(0, len(body), 4):  # the body over about 4 timeouts
            sock.sendall(body[i:i + 4])
            time.sleep(TIMEOUT_S * 4 / len(body) * 4)
        sock.settimeout(30)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200") and b'"tokens_predicted":4' in reply


def test_a_client_that_stops_reading_loses_its_stream_and_its_slot_but_no_one_else_waits(timed):
    # n_probs makes each event several KB, so the socket's buffers fill after a few hundred tokens
    body = json.dumps({"prompt": "Write a very long story", "n_predict": 20000, "ignore_eos": True, "stream": True,
                       "n_probs": 100}).encode()
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(_address(timed))
    try:
        stalled.sendall(b"POST /completion HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n" % len(body) + body)
        poll_until(lambda: any(s["is_processing"] for s in httpx.get(timed.url + "/slots").json()), "the stream to start", 30)
        # meanwhile another client is served as usual
        other = httpx.post(timed.url + "/completion", json={"prompt": "Hi", "n_predict": 8}, timeout=60).json()
        assert other["tokens_predicted"] == 8
        poll_until(lambda: "the client read nothing for 3 s (--timeout): response abandoned" in timed.log(),
                   "the write timeout", 120)
        # its task is cancelled with it: the slot is free although the client is still connected
        poll_until(lambda: not any(s["is_processing"] for s in httpx.get(timed.url + "/slots").json()), "the slot to be freed", 10)
        took = _closed_within(stalled, 10)  # what it had buffered, then the end
        assert took < 10
    finally:
        stalled.close()
    assert httpx.get(timed.url + "/health").status_code == 200
