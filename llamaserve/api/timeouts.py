"""-to/--timeout on reads and writes, as llama-server's HTTP server applies it, for clients that stall.

- Reading: a connection whose request (headers or body) is incomplete and that sends nothing for
  --timeout seconds is closed, as is one that connects and sends nothing (slowloris). Between the
  requests of a kept-alive connection uvicorn's keep-alive timeout applies.
- Writing: a response that cannot send anything for --timeout seconds (the client stopped reading
  and the socket's buffers are full) is abandoned and its connection closed; its tasks are cancelled
  as for a client that left.

uvicorn has neither: its protocol waits on a silent connection, and its send() waits for a full
socket to drain, for ever.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("llamaserve.http")

ABORT_KEY = "llamaserve.abort"  # in the ASGI scope: drops the request's connection at once (set by the protocol)


def read_timeout_protocol(seconds: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, closing a connection that is silent for `seconds` mid-request, and
    giving each request's scope a way to drop its connection (WriteTimeout's)."""

    class ReadTimeoutProtocol(HttpToolsProtocol):
        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._incomplete = True  # the first request is awaited
            self._read_timer: asyncio.TimerHandle | None = None
            self._arm()

        def data_received(self, data: bytes) -> None:
            self._arm()
            super().data_received(data)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._incomplete = True

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            self.scope[ABORT_KEY] = self.transport.abort  # type: ignore[index]

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._incomplete = False

        def connection_lost(self, exc) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
            self._read_timer = self.loop.call_later(seconds, self._read_timed_out)

        def _read_timed_out(self) -> None:
            self._read_timer = None
            if self._incomplete and not self.transport.is_closing():
                peer = "%s:%d" % self.client if self.client else "a client"
                log.warning("%s sent no complete request within %g s (--timeout): connection closed", peer, seconds)
                self.transport.close()

    return ReadTimeoutProtocol


class WriteTimeout:
    """Pure ASGI middleware: each send() of a response gets `seconds` to go out, or its connection is
    dropped. A timer per send rather than asyncio.wait_for, which would run each send in a task of its
    own: an extra turn of the loop for every chunk, and a response could reach its client before the
    request's own code (its log line, its latency) had run."""

    def __init__(self, app, seconds: float):
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()

        def stalled() -> None:
            log.warning("%s %s: the client read nothing for %g s (--timeout): response abandoned, connection closed",
                        scope["method"], scope["path"], self.seconds)
            # close() would wait for the buffered bytes to go out first, which is what never happens;
            # aborting ends the waiting send and tells the handler's disconnect watcher, which cancels
            # the request's tasks
            abort = scope.get(ABORT_KEY)
            if abort is not None:
                abort()

        async def timed_send(message) -> None:
            timer = loop.call_later(self.seconds, stalled)
            try:
                await send(message)
            finally:
                timer.cancel()

        await self.app(scope, receive, timed_send)
