"""Media for the media tests: small PNGs of seeded random pixels and WAVs of sine waves, written with the
standard library (no imaging or audio package needed), and the projector they are read with."""

from __future__ import annotations

import base64
import os
import struct
import zlib

import numpy as np

from tests.conftest import SHARED_MODELS

MMPROJ = os.path.join(SHARED_MODELS, "synthetic-mmproj-smollm2.f32.gguf")  # 16 tokens per image (models README)


def png(seed: int, w: int = 40, h: int = 30) -> bytes:
    px = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    raw = b"".join(b"\x00" + px[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def b64(seed: int) -> str:
    return base64.b64encode(png(seed)).decode()


def data_uri(seed: int) -> str:
    return "data:image/png;base64," + b64(seed)


def wav(freq: float = 440.0, seconds: float = 1.0, rate: int = 16000) -> bytes:
    """A mono 16-bit WAV of a sine wave, written with the standard library's `wave`."""
    import io
    import wave
    t = np.arange(int(seconds * rate)) / rate
    samples = (12000 * np.sin(2 * np.pi * freq * t)).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buf.getvalue()
