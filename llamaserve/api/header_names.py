"""Response header names spelled as llama-server spells them ("Access-Control-Allow-Origin",
"Process-Start-Time-Unix"), with its Date and Server headers.

Header names are case-insensitive, but clients written against llama-server read them from
case-sensitive maps (llama.cpp's own test suite copies `requests`' headers into a dict). Starlette
lowercases every name, and uvicorn's httptools writer lowercases them again as it writes: it compares
`name.lower()` with "content-length", "transfer-encoding" and "connection" and writes that lowered
name. A name here is therefore a bytes subclass whose lower() is itself and which compares equal to
its lowercase form: the writer still recognises the framing headers and writes the capitals.
(h11, uvicorn's other writer, keeps the case it is given; these names work there too.)
"""

from __future__ import annotations

import email.utils
import time

# Names whose usual spelling is not one capital per dash-separated word.
_SPECIAL = {b"etag": b"ETag", b"www-authenticate": b"WWW-Authenticate", b"te": b"TE",
            b"content-md5": b"Content-MD5", b"x-xss-protection": b"X-XSS-Protection"}
_CACHE_LIMIT = 1024  # names come from our routes and the router's children: a small set


class HeaderName(bytes):
    """A header name with capitals that passes for its lowercase form (see the module docstring)."""

    __slots__ = ()

    def lower(self) -> "HeaderName":
        return self

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (bytes, bytearray)):
            return bytes.lower(self) == bytes.lower(bytes(other))
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(bytes.lower(self))


_spelled: dict[bytes, HeaderName] = {}


def spell(name: bytes) -> HeaderName:
    """b"access-control-allow-origin" -> b"Access-Control-Allow-Origin" (a HeaderName)."""
    low = bytes.lower(bytes(name))
    cased = _spelled.get(low)
    if cased is None:
        cased = HeaderName(_SPECIAL.get(low) or b"-".join(w[:1].upper() + w[1:] for w in low.split(b"-")))
        if len(_spelled) < _CACHE_LIMIT:
            _spelled[low] = cased
    return cased


_DATE, _SERVER, _CONTENT_LENGTH, _TRANSFER_ENCODING, _CONNECTION = (
    spell(n) for n in (b"date", b"server", b"content-length", b"transfer-encoding", b"connection"))
_CHUNKED = b"chunked"
_CLOSE = b"close"


def _closes(scope) -> bool:
    """Whether uvicorn ends the connection after this response (an HTTP/1.0 request, or one that asks):
    it then adds a lowercase "connection: close" unless the response has the header already."""
    if scope.get("http_version") == "1.0":
        return True
    for key, value in scope.get("headers") or ():
        if key == b"connection" and _CLOSE in value.lower():
            return True
    return False


class _Clock:
    """The Date header's value, formatted once a second."""

    def __init__(self) -> None:
        self.second = -1
        self.value = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self.second:
            self.second = second
            self.value = email.utils.formatdate(second, usegmt=True).encode("ascii")
        return self.value


class HeaderNames:
    """Pure ASGI middleware, outermost: every response header name in llama-server's spelling, plus
    Date and Server (uvicorn's own are turned off in server.py, as it would write them lowercase), and
    the framing headers uvicorn would otherwise add in lowercase: Transfer-Encoding for a response
    without a length, Connection: close when the connection ends with it."""

    def __init__(self, app, server: str = "llamaserve"):
        self.app = app
        self.server = server.encode("latin-1")
        self.clock = _Clock()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_spelled(message):
            if message["type"] == "http.response.start":
                headers = [(spell(k), v) for k, v in message.get("headers", ())]
                present = {k for k, _ in headers}
                if _DATE not in present:
                    headers.append((_DATE, self.clock.now()))
                if _SERVER not in present:
                    headers.append((_SERVER, self.server))
                status = message["status"]
                if (_CONTENT_LENGTH not in present and _TRANSFER_ENCODING not in present
                        and scope.get("method") != "HEAD" and status >= 200 and status not in (204, 304)):
                    headers.append((_TRANSFER_ENCODING, _CHUNKED))
                if _CONNECTION not in present and _closes(scope):
                    headers.append((_CONNECTION, _CLOSE))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_spelled)
