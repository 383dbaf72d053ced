"""GET/POST /cors-proxy?url=...: the web UI's way to reach MCP servers that send no CORS headers (--ui-mcp-proxy).

The server fetches the URL the client names and streams the answer back, so it is off by default (403):
whoever may call it makes this server a client of any host it can reach. Of the caller's headers only
the ones it names explicitly go out, as `X-Llama-Server-Proxy-Header-<Name>: value` becomes
`<Name>: value`; its own Authorization, X-Api-Key and cookies (this server's credentials) never do.
"""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from llamaserve.errors import FeatureDisabled, InvalidRequest, ServerError

router = APIRouter()

PROXY_HEADER_PREFIX = "x-llama-server-proxy-header-"
# Not forwarded even when named: the body's length and coding are the proxy's to set, and the answer
# comes back uncompressed (Accept-Encoding: identity), so that it passes through as it is.
_REQUEST_HEADERS_OWN = frozenset({"host", "content-length", "transfer-encoding", "accept-encoding", "connection"})
# Dropped from the answer: this server frames the response and writes its own CORS headers.
_RESPONSE_HEADERS_OWN = frozenset({"server", "date", "content-length", "transfer-encoding", "keep-alive",
                                   "connection", "content-encoding"})
TIMEOUT_S = 600.0  # an MCP call may stream for minutes, as llama-server allows


def target_url(raw: str | None) -> httpx.URL:
    """The ?url= parameter, checked: http or https, a host, no credentials. Raises InvalidRequest."""
    if not raw:
        raise InvalidRequest("the url query parameter is required: /cors-proxy?url=http://host/path")
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, ValueError) as exc:
        raise InvalidRequest(f"invalid target URL: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise InvalidRequest(f"unsupported URL scheme in target URL: {url.scheme or 'none'} (http or https)")
    if not url.host:
        raise InvalidRequest("invalid target URL: missing host")
    if url.password:
        raise InvalidRequest("authentication in target URL is not supported")
    return url


def forwarded_headers(headers) -> dict[str, str]:
    """The explicit proxy headers of a request, without their prefix (see the module docstring)."""
    out = {}
    for key, value in headers.items():
        lowered = key.lower()
        if lowered.startswith(PROXY_HEADER_PREFIX):
            name = key[len(PROXY_HEADER_PREFIX):]
            if name and name.lower() not in _REQUEST_HEADERS_OWN:
                out[name] = value
    return out


# Not in the OpenAPI schema: its body and answer are the target's, whatever they are.
@router.api_route("/cors-proxy", methods=["GET", "POST"], include_in_schema=False)
async def cors_proxy(request: Request) -> Response:
    if not request.app.state.config.ui_mcp_proxy:
        raise FeatureDisabled("this feature is disabled")
    url = target_url(request.query_params.get("url"))
    headers = {**forwarded_headers(request.headers), "Accept-Encoding": "identity"}
    body = await request.body() if request.method == "POST" else None
    # no proxies from the environment (a loopback MCP server must not go through one), as llama-server's client
    client = httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=True, trust_env=False)
    try:
        upstream = await client.send(client.build_request(request.method, url, headers=headers, content=body), stream=True)
    except httpx.HTTPError as exc:
        await client.aclose()
        raise _ProxyError(f"proxy error: {type(exc).__name__}: {exc or 'no answer'}") from None
    except BaseException:
        await client.aclose()
        raise

    async def close() -> None:
        await upstream.aclose()
        await client.aclose()

    kept = {k: v for k, v in upstream.headers.items()
            if k.lower() not in _RESPONSE_HEADERS_OWN and not k.lower().startswith("access-control-")}
    return StreamingResponse(upstream.aiter_raw(), status_code=upstream.status_code, headers=kept,
                             background=BackgroundTask(close))


class _ProxyError(ServerError):
    status = 502  # the target could not be reached or broke off: not this server's fault, nor the caller's
