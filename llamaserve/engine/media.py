"""Images and audio through libmtmd: the projector (--mmproj), prompts of text and media chunks, and the
media chunks' embeddings decoded into a slot's sequence.

A media chunk takes n positions in the sequence like n tokens, but has no token ids. The prompt a task
carries marks those positions with one pseudo id per chunk, negative (no vocabulary id is) and derived
from the media's hash: the prompt cache, the host cache and cross-slot reuse compare prompts as token
lists, and with these ids a prefix match runs through an image that is the same and stops where one
differs. A match may still end inside a chunk (two prompts that hold the same image at different places
line up only by chance); `MediaPrompt.floor` moves such a cut back to the chunk's start, because a
chunk is evaluated whole or not at all.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass, field

import llama_cpp.llama_cpp as ll
import llama_cpp.mtmd_cpp as mt
import numpy as np

from llamaserve.errors import InvalidRequest, ServerError

log = logging.getLogger("llamaserve.engine")

MARKER = "<__media__>"  # libmtmd's default media marker, as llama-server puts it in prompts
EMBD_CACHE_BYTES = 256 << 20  # encoded media kept for follow-up turns that carry the same image


class ProjectorLoadError(ServerError):
    status = 500
    type = "server_error"


def looks_like_audio(data: bytes) -> bool:
    """What libmtmd's helper takes for audio (and then decodes as such, never as an image): WAV, MP3, FLAC."""
    if len(data) < 12:
        return False
    return ((data[:4] == b"RIFF" and data[8:12] == b"WAVE") or data[:3] == b"ID3"
            or (data[0] == 0xFF and data[1] & 0xE0 == 0xE0) or data[:4] == b"fLaC")


def pseudo_id(key: str) -> int:
    """The id that stands for every position of the media with this hash: negative, never 0."""
    return -1 - (int(key[:15], 16) % (2**31 - 2))


@dataclass(frozen=True)
class MediaSpan:
    start: int  # first position in the prompt
    n_tokens: int
    key: str  # the media's content hash (libmtmd's bitmap id)
    kind: str  # "image" or "audio"
    chunk: int = field(repr=False)  # mtmd_input_chunk pointer, owned by the MediaPrompt's chunk list
    non_causal: bool = False  # the model attends to this chunk's positions both ways (e.g. Gemma 3)

    @property
    def end(self) -> int:
        return self.start + self.n_tokens


class _Chunks:
    """Owns an mtmd_input_chunks list; freed when the last task holding it is gone."""

    def __init__(self, ptr):
        self.ptr = ptr

    def __del__(self):
        if self.ptr:
            mt.mtmd_input_chunks_free(self.ptr)
            self.ptr = None


@dataclass(frozen=True)
class MediaPrompt:
    tokens: list[int]
    spans: tuple[MediaSpan, ...]
    owner: object = field(default=None, repr=False, compare=False)

    @property
    def n_media_tokens(self) -> int:
        return sum(s.n_tokens for s in self.spans)


def floor(spans: tuple[MediaSpan, ...], n: int) -> int:
    """The longest prefix of at most n positions that does not end inside a media chunk."""
    for s in spans:
        if s.start < n < s.end:
            return s.start
    return n


def span_at(spans: tuple[MediaSpan, ...], pos: int) -> MediaSpan | None:
    for s in spans:
        if s.start == pos:
            return s
    return None


def next_media(spans: tuple[MediaSpan, ...], pos: int) -> int | None:
    """The start of the first media chunk at or after pos."""
    starts = [s.start for s in spans if s.start >= pos]
    return min(starts) if starts else None


class Projector:
    """The multimodal projector beside the text model; its context is used by the scheduler thread
    (encoding) and by request handlers (tokenizing, which only preprocesses pixels and samples)."""

    def __init__(self, path: str, model, n_threads: int, use_gpu: bool, image_min_tokens: int = 0,
                 image_max_tokens: int = 0, batch_max_tokens: int = 0, verbose: bool = False):
        p = mt.mtmd_context_params_default()
        p.use_gpu = use_gpu
        p.n_threads = n_threads
        p.print_timings = verbose
        p.warmup = True
        if image_min_tokens > 0:
            p.image_min_tokens = image_min_tokens
        if image_max_tokens > 0:
            p.image_max_tokens = image_max_tokens
        if batch_max_tokens > 0:
            p.batch_max_tokens = batch_max_tokens
        self.ctx = mt.mtmd_init_from_file(path.encode(), model, p)
        if not self.ctx:
            raise ProjectorLoadError(f"failed to load the multimodal projector {path}")
        self.path = path
        self.vision = bool(mt.mtmd_support_vision(self.ctx))
        self.audio = bool(mt.mtmd_support_audio(self.ctx))
        if mt.mtmd_decode_use_mrope(self.ctx):
            # M-RoPE models place an image on fewer positions than it has tokens (2-D positions); the
            # slots here keep one position per token
            self.close()
            raise ProjectorLoadError(f"{path}: projectors for M-RoPE models (Qwen2-VL and kin) are not supported yet")
        self.n_embd = ll.llama_model_n_embd_inp(model)  # the width of the embeddings the model reads
        self._embd: OrderedDict[str, np.ndarray] = OrderedDict()
        self._embd_bytes = 0
        self.n_encoded = 0  # media chunks encoded, and taken from the cache instead (/props "media")
        self.n_reused = 0

    @property
    def modalities(self) -> dict[str, bool]:
        return {"vision": self.vision, "video": False, "audio": self.audio}

    def close(self) -> None:
        if self.ctx:
            mt.mtmd_free(self.ctx)
            self.ctx = None

    # --- request side: text with markers plus media bytes -> a prompt ---

    def tokenize(self, text: str, media: list[bytes], add_special: bool = True, parse_special: bool = True) -> MediaPrompt:
        n_markers = text.count(MARKER)
        if n_markers != len(media):
            raise InvalidRequest(f"the prompt has {n_markers} media marker(s) for {len(media)} media file(s)")
        bitmaps = []
        try:
            for i, data in enumerate(media):
                buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
                if looks_like_audio(data) and not self.audio:
                    # libmtmd would refuse it too, but only as undecodable
                    raise InvalidRequest(f"media {i}: this model does not take audio input (its projector has no audio encoder)")
                bm = mt.mtmd_helper_bitmap_init_from_buf(self.ctx, buf, len(data), False)
                if not bm:
                    if looks_like_audio(data):
                        raise InvalidRequest(f"media {i}: cannot decode the audio (formats: WAV, MP3, FLAC)")
                    raise InvalidRequest(f"media {i}: cannot decode it as an image{' or audio' if self.audio else ''} "
                                         "(formats: PNG, JPEG, BMP, GIF, ...; WAV, MP3, FLAC for audio)")
                bitmaps.append(bm)
                if not mt.mtmd_bitmap_is_audio(bm) and not self.vision:
                    raise InvalidRequest(f"media {i}: this model does not take images (its projector has no vision encoder)")
                mt.mtmd_bitmap_set_id(bm, hashlib.sha256(data).hexdigest().encode())
            chunks = _Chunks(mt.mtmd_input_chunks_init())
            raw = text.encode("utf-8")
            inp = mt.mtmd_input_text()
            inp.text, inp.text_len, inp.add_special, inp.parse_special = raw, len(raw), add_special, parse_special
            arr = (mt.mtmd_bitmap_p_ctypes * max(1, len(bitmaps)))(*bitmaps)
            rc = mt.mtmd_tokenize(self.ctx, chunks.ptr, ctypes.byref(inp), arr, len(bitmaps))
            if rc != 0:
                raise InvalidRequest(f"the media could not be prepared for the model (libmtmd error {rc})")
        finally:
            for bm in bitmaps:
                mt.mtmd_bitmap_free(bm)
        return self._prompt(chunks)

    def _prompt(self, chunks: _Chunks) -> MediaPrompt:
        tokens: list[int] = []
        spans = []
        for i in range(mt.mtmd_input_chunks_size(chunks.ptr)):
            c = mt.mtmd_input_chunks_get(chunks.ptr, i)
            kind = mt.mtmd_input_chunk_get_type(c)
            if kind == mt.MTMD_INPUT_CHUNK_TYPE_TEXT:
                n = ctypes.c_size_t()
                ids = mt.mtmd_input_chunk_get_tokens_text(c, ctypes.byref(n))
                tokens.extend(ids[k] for k in range(n.value))
                continue
            n_tokens = mt.mtmd_input_chunk_get_n_tokens(c)
            key = (mt.mtmd_input_chunk_get_id(c) or b"").decode() or hashlib.sha256(str(i).encode()).hexdigest()
            spans.append(MediaSpan(start=len(tokens), n_tokens=n_tokens, key=key,
                                   kind="audio" if kind == mt.MTMD_INPUT_CHUNK_TYPE_AUDIO else "image",
                                   chunk=c, non_causal=bool(mt.mtmd_decode_use_non_causal(self.ctx, c))))
            tokens.extend([pseudo_id(key)] * n_tokens)
        return MediaPrompt(tokens, tuple(spans), chunks)

    # --- scheduler side ---

    def embeddings(self, span: MediaSpan) -> np.ndarray:
        """The chunk's embeddings (n_tokens × n_embd), encoded once per media content and kept for the
        next request that carries the same media (a conversation's follow-up turns do)."""
        cached = self._embd.get(span.key)
        if cached is not None and cached.shape[0] == span.n_tokens:
            self._embd.move_to_end(span.key)
            self.n_reused += 1
            return cached
        rc = mt.mtmd_encode_chunk(self.ctx, span.chunk)
        if rc != 0:
            raise InvalidRequest(f"the {span.kind} could not be encoded (libmtmd error {rc})")
        out = mt.mtmd_get_output_embd(self.ctx)
        embd = np.ctypeslib.as_array(out, shape=(span.n_tokens * self.n_embd,)).reshape(span.n_tokens, self.n_embd).copy()
        self.n_encoded += 1
        self._embd[span.key] = embd
        self._embd_bytes += embd.nbytes
        while self._embd_bytes > EMBD_CACHE_BYTES and len(self._embd) > 1:
            _, old = self._embd.popitem(last=False)
            self._embd_bytes -= old.nbytes
        return embd

    def info(self) -> dict:
        """For /props: what it takes, and how often encoding was spared (read off the scheduler thread: plain ints)."""
        return {"path": self.path, **self.modalities, "encoded": self.n_encoded, "reused": self.n_reused,
                "cached": len(self._embd)}


class EmbdBatch:
    """A llama_batch of embeddings for one sequence (llama_batch_init with embd > 0), reused across chunks."""

    def __init__(self, capacity: int, n_embd: int):
        self.capacity = capacity
        self.n_embd = n_embd
        self.b = ll.llama_batch_init(capacity, n_embd, 1)

    def decode(self, ctx, embd: np.ndarray, pos0: int, seq: int, logits_last: bool) -> int:
        """Decode the rows of embd at positions pos0.. of seq; logits at the last row if asked."""
        n = embd.shape[0]
        b = self.b
        flat = np.ascontiguousarray(embd, dtype=np.float32).ravel()
        ctypes.memmove(b.embd, flat.ctypes.data, flat.nbytes)
        for i in range(n):
            b.pos[i] = pos0 + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = 1 if (logits_last and i == n - 1) else 0
        b.n_tokens = n
        return ll.llama_decode(ctx, b)

    def close(self) -> None:
        if self.b is not None:
            ll.llama_batch_free(self.b)
            self.b = None
