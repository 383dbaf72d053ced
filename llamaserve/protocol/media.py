"""Media in requests, as the API families send it, made into what the engine's media tokenizer takes:
the bytes of each image or audio clip, in the order of the markers put where they sit in the prompt text.

Pure: base64 is decoded here. File and http(s) URLs were read before the body got here
(api/media_fetch.py puts them in as data: URIs); none is read here.
"""

from __future__ import annotations

import base64
import binascii

from llamaserve.errors import InvalidRequest

MARKER = "<__media__>"  # libmtmd's default marker (engine/media.py uses the same)
MAX_MEDIA_BYTES = 64 << 20  # one image or clip, decoded


def data_uri(data: bytes | str) -> str:
    """Media (bytes, or base64 text) as a data: URI the chat plan reads back. The type is a placeholder:
    libmtmd tells the format from the bytes."""
    return "data:image/*;base64," + (data if isinstance(data, str) else base64.b64encode(data).decode())


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


def from_url(url, where: str) -> bytes:
    """A media URL as llama-server takes it: a data: URI (image/, audio/ or video/, base64) or bare base64.
    File and http(s) URLs arrive here already read (api/media_fetch.py); one that did not is refused."""
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
    if url.startswith(("file://", "http://", "https://")):
        raise InvalidRequest(f"{where}: a file or remote media URL is read only where the chat routes take it "
                             "(image_url, input_audio, input_image, an Anthropic url source); send the media inline")
    return b64(url, where)


def openai_part(part: dict, where: str) -> bytes | None:
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
