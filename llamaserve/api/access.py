"""Who may call what: API keys and CORS, as one ASGI middleware around the whole app.

It wraps every route, so a router added later needs a key without doing anything;
only the routes in PUBLIC_ROUTES are open. Browsers' CORS preflights (OPTIONS) are
answered here before any key is asked for, since browsers never send one with them.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from urllib.parse import urlsplit

from llamaserve.api import errors, webui
from llamaserve.config import Config
from llamaserve.errors import AuthenticationError

log = logging.getLogger("llamaserve.http")

# Open without a key (GET/HEAD only), as llama-server's spec lists them.
PUBLIC_ROUTES = frozenset({"/health", "/v1/health", "/models", "/v1/models", "/api/tags"})
_PUBLIC_METHODS = frozenset({"GET", "HEAD"})
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _digest(secret: bytes) -> bytes:
    # Comparing fixed-length digests keeps the comparison's time independent of the key's length too.
    return hashlib.sha256(secret).digest()


class AccessPolicy:
    """The decisions, without I/O: is a request allowed, which CORS headers does it get."""

    def __init__(self, config: Config, public_file=None):
        # --path: whether a path names one of the directory's files, which are as public as the built-in UI's
        self.public_file = public_file
        # AIP_HEALTH_ROUTE is /health under the name Vertex AI probes, without a key as /health is
        self.public_routes = PUBLIC_ROUTES | ({config.predict_health_route} if config.predict_health_route else set())
        self._key_digests = [_digest(k.encode("utf-8")) for k in config.api_keys]
        self.origins = config.cors_origins.strip()
        self._origin_list = {o.strip().rstrip("/").lower() for o in self.origins.split(",") if o.strip()}
        self.methods = config.cors_methods
        self.headers = config.cors_headers
        self.credentials = config.cors_credentials

    @property
    def keys_required(self) -> bool:
        return bool(self._key_digests)

    def is_public(self, method: str, path: str) -> bool:
        # The web UI's own files too: a browser must load the page before it can ask for a key.
        if method not in _PUBLIC_METHODS:
            return False
        return path in self.public_routes or webui.is_public_path(path) or bool(self.public_file and self.public_file(path))

    def authorized(self, authorization: bytes | None, x_api_key: bytes | None) -> bool:
        """True if a presented credential is one of the keys. Every key is compared, in constant time."""
        if not self._key_digests:
            return True
        presented = []
        if authorization:
            value = authorization.strip()
            if value[:7].lower() == b"bearer ":
                value = value[7:].strip()
            presented.append(value)
        if x_api_key:
            presented.append(x_api_key.strip())
        ok = False
        for candidate in presented:
            d = _digest(candidate)
            for key in self._key_digests:
                ok |= hmac.compare_digest(d, key)
        return ok

    def allow_origin(self, origin: str | None) -> tuple[str | None, bool]:
        """(Access-Control-Allow-Origin value or None, whether it depends on the Origin header)."""
        if self.origins == "*":
            if self.credentials and origin:
                return origin, True  # browsers refuse '*' with credentials: echo the origin instead
            return "*", False
        if not origin:
            return None, True
        if self.origins == "localhost":
            host = urlsplit(origin).hostname or ""
            return (origin, True) if host in _LOCAL_HOSTS else (None, True)
        return (origin, True) if origin.rstrip("/").lower() in self._origin_list else (None, True)

    def response_headers(self, origin: str | None) -> list[tuple[bytes, bytes]]:
        value, varies = self.allow_origin(origin)
        out = []
        if value is not None:
            out.append((b"access-control-allow-origin", value.encode("latin-1")))
            if self.credentials:
                out.append((b"access-control-allow-credentials", b"true"))
        if varies:
            out.append((b"vary", b"Origin"))
        return out

    def preflight_headers(self, origin: str | None) -> list[tuple[bytes, bytes]]:
        # --cors-headers goes out as given, as llama-server sends it. (A browser reads '*' as "any
        # header but Authorization", and literally when credentials are on: a cross-origin client that
        # sends a key needs --cors-headers naming Authorization; the README says so.)
        allow_headers = self.headers
        out = [h for h in self.response_headers(origin) if h[0] != b"access-control-allow-credentials"]
        out += [
            (b"access-control-allow-credentials", b"true" if self.credentials else b"false"),
            (b"access-control-allow-methods", self.methods.encode("latin-1")),
            (b"access-control-allow-headers", allow_headers.encode("latin-1")),
        ]
        return out


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value
    return None


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value else None


class AccessControl:
    """Pure ASGI middleware: CORS headers on every response, preflights, API keys."""

    def __init__(self, app, config: Config, public_file=None):
        self.app = app
        self.policy = AccessPolicy(config, public_file)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        policy = self.policy
        origin = _text(_header(scope, b"origin"))
        method = scope.get("method", "GET")

        if scope["type"] == "http" and method == "OPTIONS":
            headers = policy.preflight_headers(origin)
            headers += [(b"content-type", b"text/html"), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return

        if policy.keys_required and not policy.is_public(method, scope["path"]):
            if not policy.authorized(_header(scope, b"authorization"), _header(scope, b"x-api-key")):
                # Never log what was presented: it may be a real key with a typo.
                log.warning("unauthorized: %s %s without a valid API key", method, scope["path"])
                if scope["type"] == "websocket":
                    return await send({"type": "websocket.close", "code": 1008})
                response = errors.error_response(AuthenticationError("Invalid API Key"), scope["path"])
                response.headers["WWW-Authenticate"] = "Bearer"
                return await response(scope, receive, self._with_cors(send, origin))

        await self.app(scope, receive, self._with_cors(send, origin))

    def _with_cors(self, send, origin: str | None):
        extra = self.policy.response_headers(origin)
        if not extra:
            return send

        async def send_with_cors(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        return send_with_cors
