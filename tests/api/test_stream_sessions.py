"""Resumable streams on a single-model server: a streamed request with X-Conversation-Id keeps its SSE bytes
in a session that GET /v1/stream replays from any byte offset, runs on when its client leaves, and stops on
DELETE /v1/stream. One slot, so that a request can be held in the queue while its client goes away."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import ONE_THREAD, poll_until, send_and_leave, serve

CHAT = {"messages": [{"role": "user", "content": "hello"}], "stream": True, "temperature": 0}
LONG = {"prompt": "Tell a story", "n_predict": 1000, "ignore_eos": True, "stream": True}


@pytest.fixture(scope="module")
def srv(request):
    return serve(request, "streams", "-np", "1", "-c", "2048", "--metrics", *ONE_THREAD)


def conv(cid: str) -> dict[str, str]:
    return {"X-Conversation-Id": cid}


def events(raw: bytes) -> list[dict]:
    """The JSON events of an SSE body ([DONE] left out)."""
    return [json.loads(line[6:]) for line in raw.decode().split("\n") if line.startswith("data: {")]


def streamed(client: httpx.Client, path: str, body: dict, cid: str) -> bytes:
    with client.stream("POST", path, json=body, headers=conv(cid)) as r:
        assert r.status_code == 200
        return r.read()


def replay(client: httpx.Client, cid: str, offset: int | str = 0) -> httpx.Response:
    return client.get("/v1/stream", params={"conv_id": cid, "from": offset})


def lookup(client: httpx.Client, *ids: str) -> list[dict]:
    r = client.post("/v1/streams/lookup", json={"conversation_ids": list(ids)})
    assert r.status_code == 200
    return r.json()


def deferred(client: httpx.Client) -> int:
    """Requests waiting for a slot (the queue of the engine: their body has been read)."""
    line = next(x for x in client.get("/metrics").text.splitlines() if x.startswith("llamacpp:requests_deferred "))
    return int(float(line.split()[1]))


@pytest.mark.parametrize("path, body", [("/v1/chat/completions", {**CHAT, "max_tokens": 8}),
                                        ("/completion", {"prompt": "Hello", "n_predict": 8, "stream": True})])
def test_a_session_replays_its_stream_from_any_byte_offset(srv, path, body):
    cid = f"replay {path}::SmolLM2"
    with srv.client() as c:
        received = streamed(c, path, body, cid)
        whole = replay(c, cid)
        assert whole.status_code == 200 and whole.headers["content-type"].startswith("text/event-stream")
        assert whole.content == received and events(received)
        half = len(received) // 2
        assert replay(c, cid, half).content == received[half:]
        assert replay(c, cid, len(received)).content == b""
        # an id also finds its per-model variants ("<id>::<model>"), as llama-server's web UI keys them
        [found] = lookup(c, cid.split("::")[0])
        assert found["conversation_id"] == cid and found["is_done"] is True and found["total_bytes"] == len(received)
        assert found["completed_at"] >= found["started_at"] > 0


def test_the_generation_runs_on_after_its_client_leaves(srv):
    cid = "left early"
    body = json.dumps({**CHAT, "max_tokens": 12, "ignore_eos": True}).encode()
    with srv.client() as c:
        # A first request holds the only slot, so the session's request is still queued when its client goes
        with c.stream("POST", "/completion", json=LONG) as holder:
            assert holder.status_code == 200
            next(holder.iter_raw())
            sock = send_and_leave(srv.url, "/v1/chat/completions", body, conv(cid))
            poll_until(lambda: deferred(c) == 1, "the session's request queued")
            sock.close()
            [session] = lookup(c, cid)
            assert session["is_done"] is False and session["total_bytes"] == 0
        # the holder's client left as well (a plain request: it is cancelled), so the slot is free now
        r = replay(c, cid)
        assert r.status_code == 200 and r.content.endswith(b"data: [DONE]\n\n")
        final = [e for e in events(r.content) if e.get("choices") and e["choices"][0]["finish_reason"]]
        assert final[-1]["choices"][0]["finish_reason"] == "length" and final[-1]["timings"]["predicted_n"] == 12


def test_delete_stops_the_generation_and_forgets_the_session(srv):
    cid = "stopped"
    with srv.client() as c:
        with c.stream("POST", "/completion", json=LONG, headers=conv(cid)) as r:
            assert r.status_code == 200
            chunks = r.iter_raw()
            first = next(chunks)
            assert c.delete("/v1/stream", params={"conv_id": cid}).status_code == 204
            rest = b"".join(chunks)
        # the stream ends at the stop, without the final event of a finished generation
        assert not [e for e in events(first + rest) if e.get("stop")]
        assert replay(c, cid).status_code == 404 and lookup(c, cid) == []
        # idempotent: stopping what is gone is no error
        assert c.delete("/v1/stream", params={"conv_id": cid}).status_code == 204


def test_requests_that_do_not_stream_leave_no_session(srv):
    with srv.client() as c:
        bad = c.post("/v1/chat/completions", json={**CHAT, "messages": "hi"}, headers=conv("refused"))
        assert bad.status_code == 400
        plain = c.post("/v1/chat/completions", json={**CHAT, "stream": False, "max_tokens": 2}, headers=conv("plain"))
        assert plain.status_code == 200 and plain.json()["choices"]
        assert lookup(c, "refused", "plain") == []
        assert replay(c, "plain").status_code == 404


def test_stream_route_errors(srv):
    with srv.client() as c:
        received = streamed(c, "/completion", {"prompt": "Hi", "n_predict": 2, "stream": True}, "errors")
        assert received
        missing = c.get("/v1/stream")
        assert missing.status_code == 400 and missing.json()["error"]["message"] == "Missing conversation id in path"
        assert replay(c, "errors", "x").json()["error"] == {
            "code": 400, "message": "Invalid 'from' offset", "type": "invalid_request_error"}
        unknown = replay(c, "nobody")
        assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found_error"
        assert c.post("/v1/streams/lookup", content=b"{bad").status_code == 400
        assert c.post("/v1/streams/lookup", json={"conversation_ids": "errors"}).status_code == 400
