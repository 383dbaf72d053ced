"""Remote media in chat bodies: an http(s) image (or audio) URL is fetched here, before the body is
translated, and put in as a data: URI, as llama-server fetches such URLs itself (10 MB and 10 s at
most). Only where a projector is loaded (a text-only model refuses media anyway) and never with
--offline. Pure translation stays in protocol/: this is the one place a request reaches the network."""

from __future__ import annotations

import base64
import logging
from typing import Any, Iterator

import httpx
from starlette.requests import Request

from llamaserve.api.requests import read_json
from llamaserve.errors import InvalidRequest

log = logging.getLogger("llamaserve.http")

MAX_BYTES = 10 << 20
TIMEOUT_S = 10.0


def _remote(url: Any) -> bool:
    return isinstance(url, str) and url.startswith(("http://", "https://"))


def remote_refs(node: Any) -> Iterator[tuple[dict, str]]:
    """(holder, key) of each remote media URL in a chat body of any family: OpenAI's image_url (an object
    with "url", or the Responses string form), input_audio's "url", Anthropic's {"type": "url"} source."""
    if isinstance(node, list):
        for x in node:
            yield from remote_refs(x)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    ref = node.get("image_url")
    if kind in ("image_url", "input_image") and isinstance(ref, dict) and _remote(ref.get("url")):
        yield ref, "url"
    elif kind in ("image_url", "input_image") and _remote(ref):
        yield node, "image_url"
    elif kind == "input_audio" and isinstance(node.get("input_audio"), dict) and _remote(node["input_audio"].get("url")):
        yield node["input_audio"], "url"
    elif kind == "image" and isinstance(node.get("source"), dict) and node["source"].get("type") == "url" \
            and _remote(node["source"].get("url")):
        yield node["source"], "url"
    else:
        for v in node.values():
            if isinstance(v, (list, dict)):
                yield from remote_refs(v)


async def read_chat_json(request: Request) -> Any:
    """The body, with its remote media fetched where this server takes media."""
    body = await read_json(request)
    bridge = request.app.state.bridge
    scheduler = bridge.scheduler
    if not (scheduler.ready.is_set() and scheduler.model is not None and scheduler.model.projector is not None):
        return body
    refs = list(remote_refs(body))
    if not refs:
        return body
    if scheduler.config.offline:
        raise InvalidRequest("remote media URLs are not fetched with --offline; send the media inline (data: URL)")
    async with httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=True) as client:
        for holder, key in refs:
            holder[key] = await _fetch(client, holder[key])
    return body


async def _fetch(client: httpx.AsyncClient, url: str) -> str:
    try:
        async with client.stream("GET", url) as r:
            if not 200 <= r.status_code < 300:
                raise InvalidRequest(f"failed to download the media at {url}: HTTP {r.status_code}")
            data = bytearray()
            async for chunk in r.aiter_bytes():
                data += chunk
                if len(data) > MAX_BYTES:
                    raise InvalidRequest(f"the media at {url} is larger than {MAX_BYTES} bytes")
    except httpx.HTTPError as exc:
        raise InvalidRequest(f"failed to download the media at {url}: {type(exc).__name__}") from None
    log.info("downloaded %d bytes of media from %s", len(data), url)
    # the type is a placeholder: libmtmd recognises the format from the bytes
    return "data:image/*;base64," + base64.b64encode(bytes(data)).decode()
