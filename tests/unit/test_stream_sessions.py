"""Stream sessions (api/stream_sessions.py): byte offsets, the size cap, live readers, stops, replacement and
expiry; and the router's conversation owners (router/conversations.py) with their tickets."""

import asyncio

from llamaserve.api.stream_sessions import StreamSession, StreamSessions
from llamaserve.router.conversations import ConversationOwners


async def read_all(session: StreamSession, offset: int = 0) -> bytes:
    return b"".join([chunk async for chunk in session.read_from(offset)])


def test_reads_from_any_offset_and_follows_live_appends():
    async def main():
        s = StreamSession("c")
        s.append(b"data: 1\n\n")
        reader = asyncio.ensure_future(read_all(s, 6))
        await asyncio.sleep(0)
        s.append(b"data: 2\n\n")
        s.append(b"")  # nothing to add: no wake-up
        s.finish()
        s.append(b"late")  # after the end: ignored
        assert await reader == b"1\n\ndata: 2\n\n"
        assert await read_all(s, 100) == b"" and s.total == 18 and s.completed_at > 0

    asyncio.run(main())


def test_the_oldest_bytes_go_past_the_cap():
    async def main():
        s = StreamSession("c", max_bytes=8)
        s.append(b"0123456")
        s.append(b"789abc")
        assert (s.dropped, s.total, bytes(s.buffer)) == (5, 13, b"56789abc")
        s.finish()
        assert await read_all(s, 10) == b"abc"

    asyncio.run(main())


def test_a_newer_request_replaces_and_stops_the_older_session():
    async def main():
        sessions = StreamSessions()
        first = sessions.open("c")
        second = sessions.open("c")
        assert first.cancelled.is_set() and first.done and not second.cancelled.is_set()
        assert sessions.get("c") is second
        sessions.discard(first)  # the older request ending does not take the newer session with it
        assert sessions.get("c") is second
        assert sessions.stop("c") and second.cancelled.is_set() and sessions.get("c") is None
        assert not sessions.stop("c")

    asyncio.run(main())


def test_lookup_matches_ids_and_their_model_variants():
    async def main():
        sessions = StreamSessions()
        for cid in ("a", "a::org/m:Q4_0", "ab", "b"):
            sessions.open(cid)
        assert [s.conversation_id for s in sessions.matching(["a"])] == ["a", "a::org/m:Q4_0"]
        assert sessions.matching([]) == []

    asyncio.run(main())


def test_finished_sessions_expire_and_are_bounded():
    async def main():
        sessions = StreamSessions(ttl=1e12, max_finished=2)  # nothing too old yet: only the bound applies
        live = sessions.open("live")
        for i, cid in enumerate(("f1", "f2", "f3")):
            sessions.open(cid).finish()
            sessions.get(cid).completed_at = 1000.0 + i  # finished in this order, long ago
        assert sessions.get("f1") is None and sessions.get("f2") and sessions.get("f3")
        sessions.ttl = 60
        assert sessions.get("f3") is None and sessions.get("live") is live  # a running session never expires
        sessions.close()
        assert live.done and sessions.get("live") is None

    asyncio.run(main())


def test_conversation_tickets():
    owners = ConversationOwners(limit=2)
    assert owners.remember("", "m") == 0 and owners.remember("c", "") == 0
    t1 = owners.remember("c", "m")
    assert owners.alive("c", t1) and owners.lookup("c") == "m"
    t2 = owners.remember("c", "n")  # a newer request of the conversation ends the older ticket
    assert not owners.alive("c", t1) and owners.alive("c", t2) and owners.lookup("c") == "n"
    owners.forget("c")  # a stop
    assert not owners.alive("c", t2) and owners.lookup("c") is None
    for cid in ("x", "y", "z"):
        owners.remember(cid, "m")
    assert owners.lookup("x") is None and owners.lookup("z") == "m"
