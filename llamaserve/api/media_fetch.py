"""Media a chat body names by URL, read here before the body is translated and put in as data: URIs:
http(s) URLs fetched as llama-server fetches them (10 MB and 10 s at most; never with --offline), and
file:// URLs read from --media-path (a path that climbs out of it, "..", absolute or through a link, is
refused). Only where a projector is loaded: a text-only model refuses media anyway. This is the one place
a request's media reaches the network or the disk; protocol/ translates bytes only."""

from __future__ import annotations

import logging
import os
import urllib.parse
from typing import Any, Iterator

import httpx
from starlette.requests import Request

from llamaserve.api.requests import read_json
from llamaserve.errors import InvalidRequest
from llamaserve.protocol import media as media_input

log = logging.getLogger("llamaserve.http")

MAX_BYTES = 10 << 20  # a remote media file
TIMEOUT_S = 10.0


def _external(url: Any) -> bool:
    return isinstance(url, str) and url.startswith(("http://", "https://", "file://"))


def media_refs(node: Any) -> Iterator[tuple[dict, str]]:
    """(holder, key) of each http(s) or file:// media URL in a chat body of any family: OpenAI's image_url
    (an object with "url", or the Responses string form), input_audio's "data" or "url", Anthropic's
    {"type": "url"} source."""
    if isinstance(node, list):
        for x in node:
            yield from media_refs(x)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    ref = node.get("image_url")
    audio = node.get("input_audio")
    source = node.get("source")
    if kind in ("image_url", "input_image") and isinstance(ref, dict) and _external(ref.get("url")):
        yield ref, "url"
    elif kind in ("image_url", "input_image") and _external(ref):
        yield node, "image_url"
    elif kind == "input_audio" and isinstance(audio, dict):
        key = "data" if "data" in audio else "url"  # as protocol/media.py reads it
        if _external(audio.get(key)):
            yield audio, key
    elif kind == "image" and isinstance(source, dict) and source.get("type") == "url" and _external(source.get("url")):
        yield source, "url"
    else:
        for v in node.values():
            if isinstance(v, (list, dict)):
                yield from media_refs(v)


async def read_chat_json(request: Request) -> Any:
    """The body, with the media it names by URL read, where this server takes media."""
    body = await read_json(request)
    scheduler = request.app.state.bridge.scheduler
    if not (scheduler.ready.is_set() and scheduler.model is not None and scheduler.model.projector is not None):
        return body
    refs = list(media_refs(body))
    if not refs:
        return body
    config = scheduler.config
    client: httpx.AsyncClient | None = None
    try:
        for holder, key in refs:
            url = holder[key]
            if url.startswith("file://"):
                data = read_media_file(url, config.media_path)
            else:
                if config.offline:
                    raise InvalidRequest("remote media URLs are not fetched with --offline; send the media inline (data: URL)")
                client = client or httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=True)
                data = await _fetch(client, url)
            holder[key] = media_input.data_uri(data)
    finally:
        if client is not None:
            await client.aclose()
    return body


def read_media_file(url: str, media_path: str) -> bytes:
    """A file:// URL's bytes: its path is relative to --media-path, and a path that climbs out of it
    ("..", absolute) or resolves out of it through a link is refused."""
    if not media_path:
        raise InvalidRequest("file:// URLs are not allowed unless --media-path is specified")
    rel = urllib.parse.unquote(url[len("file://"):])
    parts = rel.replace("\\", "/").split("/")
    if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in rel:
        raise InvalidRequest(f"file path is not allowed: {rel}")
    root = os.path.realpath(media_path)
    real = os.path.realpath(os.path.join(root, *parts))
    if os.path.commonpath([root, real]) != root:
        raise InvalidRequest(f"file path is not allowed: {rel} (it leads outside --media-path)")
    limit = media_input.MAX_MEDIA_BYTES
    try:
        with open(real, "rb") as f:
            data = f.read(limit + 1)
    except OSError:
        raise InvalidRequest(f"file does not exist or cannot be opened: {rel}") from None
    if len(data) > limit:
        raise InvalidRequest(f"{rel}: the file is larger than {limit} bytes")
    return data


async def _fetch(client: httpx.AsyncClient, url: str) -> bytes:
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
    return bytes(data)
