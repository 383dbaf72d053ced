"""Images for the media tests: small PNGs of seeded random pixels, written with the standard library
(no imaging package needed), and the projector they are read with."""

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
