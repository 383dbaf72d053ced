"""Media in requests, as the API families send it, made into what the engine's media tokenizer takes:
the bytes of each image or audio clip (or a file:// URL the engine reads under --media-path), in the
order of the markers put where they sit in the prompt text.

Pure: base64 is decoded here; files and the network are not touched.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from llamaserve.errors import InvalidRequest

MARKER = "<__media__>"  # libmtmd's default marker (engine/media.py uses the same)
MAX_MEDIA_BYTES = 64 << 20  # one image or clip, decoded


@dataclass(frozen=True)
class MediaFile:
    """A file:// URL: read by the engine side, only under --media-path."""

    url: str


def b64(data: str, where: str) -> bytes:
    if not isinstance(data, str):
        raise InvalidRequest(f"{where}: the media data must be a base64 string")
    try:
        raw = base64.b64decode(data.strip(), validate=False)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{where}: the media data is not valid base64") from None
    if not raw:
        raise InvalidRequest(f"{where}: the media data is empty")
    if len(raw) > MAX_MEDIA_BYTES:
        raise InvalidRequest(f"{where}: the media is {len(raw)} bytes, more than the {MAX_MEDIA_BYTES} allowed")
    return raw


def from_url(url, where: str) -> bytes | MediaFile:
    """A media URL as llama-server takes it: a data: URI (image/, audio/ or video/, base64), a file:// URL
    (read under --media-path), or bare base64. Remote http(s) URLs are not fetched."""
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"{where}: the media URL must be a non-empty string")
    if url.startswith("data:"):
        head, sep, data = url.partition(",")
        if not sep:
            raise InvalidRequest(f"{where}: invalid uri-encoded base64 value")
        if not head.startswith(("data:image/", "data:audio/", "data:video/")):
            raise InvalidRequest(f"{where}: invalid uri format: {head[:64]}")
        if not head.endswith("base64"):
            raise InvalidRequest(f"{where}: the data: URI must be base64 encoded")
        return b64(data, where)
    if url.startswith("file://"):
        return MediaFile(url)
    if url.startswith(("http://", "https://")):
        raise InvalidRequest(f"{where}: remote media URLs are not fetched by this server; send the media inline "
                             "as a data: URL (or a file:// URL under --media-path)")
    return b64(url, where)


def openai_part(part: dict, where: str) -> bytes | MediaFile | None:
    """An OpenAI chat content part's media (image_url, input_audio), None for other parts."""
    kind = part.get("type")
    if kind == "image_url":
        ref = part.get("image_url")
        url = ref.get("url") if isinstance(ref, dict) else ref
        return from_url(url, where)
    if kind == "input_audio":
        audio = part.get("input_audio")
        if not isinstance(audio, dict) or not ("data" in audio or "url" in audio):
            raise InvalidRequest(f'{where}: "input_audio" needs "data" (base64)')
        return from_url(audio.get("data", audio.get("url")), where)
    return None
