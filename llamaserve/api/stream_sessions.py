"""Resumable stream sessions: the SSE bytes of one streamed generation, kept by conversation id so that a
client can read them again from any byte offset and follow the rest live (GET /v1/stream).

Everything runs on the event loop: appends, reads and evictions never interleave, so there are no locks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

# llama-server's numbers: a session keeps at most 4 MiB (the oldest bytes go first) and a finished one stays
# readable for 5 minutes.
SESSION_MAX_BYTES = 4 << 20
SESSION_TTL = 300.0
# Our own bound (llama-server has none): finished sessions kept at once; the oldest finished goes first.
# Live ones are bounded by the requests running.
MAX_FINISHED_SESSIONS = 128


class StreamSession:
    """One generation's SSE bytes: appended by the request that produces them, read by any number of readers."""

    def __init__(self, conversation_id: str, max_bytes: int = SESSION_MAX_BYTES):
        self.conversation_id = conversation_id
        self.started_at = time.time()
        self.completed_at = 0.0  # wall time it finished; 0 while it runs
        self.max_bytes = max_bytes
        self.dropped = 0  # bytes gone from the front (over max_bytes)
        self.buffer = bytearray()
        self.done = False
        # Set by a stop (DELETE, or a newer request of the same conversation): the producing request
        # takes it as its client leaving, which cancels the generation.
        self.cancelled = asyncio.Event()
        self._changed = asyncio.Event()

    @property
    def total(self) -> int:
        """Bytes that ever entered the session (the offset just past the last one)."""
        return self.dropped + len(self.buffer)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def append(self, data: bytes) -> None:
        if self.done or not data:
            return
        self.buffer += data
        excess = len(self.buffer) - self.max_bytes
        if excess > 0:
            del self.buffer[:excess]
            self.dropped += excess
        self._notify()

    def finish(self) -> None:
        if not self.done:
            self.done = True
            self.completed_at = time.time()
            self._notify()

    def cancel(self) -> None:
        self.cancelled.set()
        self.finish()

    async def read_from(self, offset: int) -> AsyncIterator[bytes]:
        """The bytes from `offset` (not below `dropped`) on: what is buffered, then each append until the
        session finishes. A reader takes everything buffered at once, so it never falls behind the front."""
        while True:
            if offset < self.total:
                chunk = bytes(self.buffer[offset - self.dropped:])
                offset = self.total
                yield chunk
                continue
            if self.done:
                return
            await self._changed.wait()


class StreamSessions:
    """The sessions by conversation id: one per conversation, a newer request replacing (and stopping)
    the older one. Finished sessions expire SESSION_TTL seconds after they end, checked whenever the
    registry is used, so that nothing runs in the background."""

    def __init__(self, ttl: float = SESSION_TTL, max_finished: int = MAX_FINISHED_SESSIONS):
        self.ttl = ttl
        self.max_finished = max_finished
        self._sessions: dict[str, StreamSession] = {}

    def open(self, conversation_id: str) -> StreamSession:
        self._expire()
        previous = self._sessions.pop(conversation_id, None)
        if previous is not None:
            previous.cancel()
        session = self._sessions[conversation_id] = StreamSession(conversation_id)
        return session

    def get(self, conversation_id: str) -> StreamSession | None:
        self._expire()
        return self._sessions.get(conversation_id)

    def discard(self, session: StreamSession) -> None:
        """Forget a session that will never stream (its request failed, or was not streamed)."""
        if self._sessions.get(session.conversation_id) is session:
            del self._sessions[session.conversation_id]
        session.finish()

    def stop(self, conversation_id: str) -> bool:
        """Stop the session's generation and forget it; False when there is none."""
        session = self._sessions.pop(conversation_id, None)
        if session is None:
            return False
        session.cancel()
        return True

    def matching(self, conversation_ids: list[str]) -> list[StreamSession]:
        """Sessions of the given ids, each id also matching its per-model variants "<id>::<model>"."""
        self._expire()
        out = []
        for cid in conversation_ids:
            variant = cid + "::"
            out += [s for key, s in self._sessions.items() if key == cid or key.startswith(variant)]
        return out

    def close(self) -> None:
        """Finish every session, so that no reader waits past shutdown."""
        for session in self._sessions.values():
            session.finish()
        self._sessions.clear()

    def _expire(self) -> None:
        cutoff = time.time() - self.ttl
        finished = [s for s in self._sessions.values() if s.done]
        finished.sort(key=lambda s: s.completed_at)
        extra = len(finished) - self.max_finished
        for i, session in enumerate(finished):
            if i < extra or session.completed_at <= cutoff:
                del self._sessions[session.conversation_id]
