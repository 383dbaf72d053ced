"""SIGTERM / SIGINT: stop accepting, let in-flight requests finish (or end them cleanly after the grace
period), stop the scheduler thread, exit 0."""

from __future__ import annotations

import concurrent.futures
import json
import signal
import threading
import time

import httpx

from tests.conftest import ONE_THREAD, start_server


def wait_busy(server, n: int) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        if sum(s["is_processing"] for s in httpx.get(server.url + "/slots", timeout=30).json()) >= n:
            return
        time.sleep(0.05)
    raise AssertionError("requests never reached the slots")


def wait_refused(server) -> bool:
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            httpx.get(server.url + "/health", timeout=5)
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
            return True
        time.sleep(0.05)
    return False


def stream_events(server, body, first: threading.Event | None = None) -> list[dict]:
    events = []
    with httpx.Client(base_url=server.url, timeout=300) as c, c.stream("POST", "/completion", json={**body, "stream": True}) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if first is not None:
                    first.set()
    return events


def test_sigterm_lets_in_flight_requests_finish(tmp_path):
    # a grace period no machine runs out of: the point is that the requests finish
    server = start_server(tmp_path, "-np", "2", "-c", "1024", "--shutdown-grace", "600", *ONE_THREAD)
    body = {"prompt": "Once upon a time", "n_predict": 200, "ignore_eos": True, "temperature": 0}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        plain = pool.submit(lambda: httpx.post(server.url + "/completion", json=body, timeout=300))
        streamed = pool.submit(stream_events, server, body)
        wait_busy(server, 2)
        server.proc.send_signal(signal.SIGTERM)
        assert wait_refused(server)  # new connections are no longer accepted
        r = plain.result(timeout=300)
        events = streamed.result(timeout=300)
    assert r.status_code == 200 and r.json()["tokens_predicted"] == 200
    assert events[-1]["stop"] is True and events[-1]["tokens_predicted"] == 200
    assert server.proc.wait(60) == 0
    log = server.log()
    assert "SIGTERM: shutting down; 2 tasks in flight" in log and "llamaserve: stopped" in log
    assert "Traceback" not in log


def test_sigint_after_the_grace_period_ends_requests_with_a_clean_error(tmp_path):
    server = start_server(tmp_path, "-np", "1", "-c", "4096", "--shutdown-grace", "1", *ONE_THREAD)
    long = {"prompt": "Count: 1, 2, 3,", "n_predict": 4000, "ignore_eos": True, "temperature": 0}
    generating = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        streamed = pool.submit(stream_events, server, long, generating)
        assert generating.wait(300)
        queued = pool.submit(lambda: httpx.post(server.url + "/completion", json={"prompt": "hi", "n_predict": 4}, timeout=300))
        time.sleep(0.5)  # let the second request reach the queue (if it does not, it is refused: also fine)
        server.proc.send_signal(signal.SIGINT)
        events = streamed.result(timeout=300)
        try:
            waiting = queued.result(timeout=300)
        except httpx.HTTPError:
            waiting = None  # it arrived after the listener closed
    last = events[-1]
    assert last["error"]["type"] == "unavailable_error" and "shutting down" in last["error"]["message"]
    assert len(events) > 1 and not any(e.get("stop") for e in events)
    if waiting is not None:
        assert waiting.status_code == 503 and "shutting down" in waiting.json()["error"]["message"]
    assert server.proc.wait(60) == 0
    log = server.log()
    assert "SIGINT: shutting down" in log and "KeyboardInterrupt" not in log and "Traceback" not in log
