"""Reverse proxy to a child: the request as received, the response relayed chunk by chunk as it arrives
(SSE and NDJSON streams included), and a client that goes away closes the upstream stream, which the
child sees as its own client leaving (it cancels the generation)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
import httpx
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from llamaserve.errors import Unavailable

log = logging.getLogger("llamaserve.router")

# Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection, not to the message being relayed.
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
               "proxy-authenticate", "proxy-authorization"}
# httpx sets host and content-length for the child; the body is already read, so nothing to "expect"
_REQUEST_DROP = _HOP_BY_HOP | {"host", "content-length", "expect"}
_RESPONSE_DROP = _HOP_BY_HOP | {"date", "server"}  # our own server adds these


def upstream_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in scope["headers"] if k.decode("latin-1").lower() not in _REQUEST_DROP]


async def open_upstream(client: httpx.AsyncClient, base_url: str, scope: Scope, body: bytes) -> httpx.Response:
    """Send the request to the child and return once its status and headers are in (body still streaming)."""
    raw_path = scope.get("raw_path") or scope["path"].encode()
    if scope.get("query_string"):
        raw_path += b"?" + scope["query_string"]
    url = httpx.URL(base_url).copy_with(raw_path=raw_path)
    request = client.build_request(scope["method"], url, headers=upstream_headers(scope), content=body)
    return await client.send(request, stream=True)


async def forward(client: httpx.AsyncClient, base_url: str, scope: Scope, body: bytes, model: str,
                  on_close: Callable[[], None]) -> ProxyResponse:
    """The child's answer to the request, relayed; `on_close` runs once the relay ends, or at once if the
    child cannot be reached (then 503)."""
    try:
        upstream = await open_upstream(client, base_url, scope, body)
    except httpx.HTTPError as exc:
        on_close()
        raise unreachable(model, exc) from None
    return ProxyResponse(upstream, model, on_close)


class ProxyResponse(Response):
    """Relays an upstream httpx response; `on_close` runs once, however the relay ends.
    (A Response subclass only so that FastAPI passes it through; it writes its own ASGI messages.)"""

    def __init__(self, upstream: httpx.Response, model: str, on_close: Callable[[], None]):  # no super(): no body
        self.background = None
        self.upstream = upstream
        self.model = model
        self.on_close = on_close

    def _headers(self) -> list[tuple[bytes, bytes]]:
        return [(k, v) for k, v in self.upstream.headers.raw if k.decode("latin-1").lower() not in _RESPONSE_DROP]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as tg:

                async def client_gone() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()  # stops the relay below, then `finally` closes upstream

                tg.start_soon(client_gone)
                await self._relay(send)
                tg.cancel_scope.cancel()
        except OSError:
            pass  # the client's connection broke while we wrote to it
        finally:
            with anyio.CancelScope(shield=True):
                await self.upstream.aclose()
            self.on_close()

    async def _relay(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.upstream.status_code, "headers": self._headers()})
        try:
            async for chunk in self.upstream.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.HTTPError as exc:
            # Too late for an error status: end the response without its terminating chunk, so the
            # client sees a broken transfer rather than a complete one.
            log.warning("model %s: upstream broke mid-response: %s", self.model, exc)
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def unreachable(model: str, exc: Exception) -> Unavailable:
    return Unavailable(f"model '{model}' is not reachable: {type(exc).__name__}: {exc}".rstrip(": "))
