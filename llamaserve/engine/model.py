"""The loaded model and its llama_context: loading, vocabulary, tokenization.

Thin wrappers over libllama (llama_cpp.llama_cpp). The context created here is
handed to exactly one thread, the scheduler's.
"""

from __future__ import annotations

import ctypes
import logging
import os
import time
from dataclasses import dataclass

import llama_cpp.llama_cpp as ll

from llamaserve.config import Config
from llamaserve.engine.cpu_features import use_extra_buffer_types
from llamaserve.errors import ServerError

log = logging.getLogger("llamaserve.engine")

_GGML_TYPES = {
    "f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "iq4_nl": 20, "bf16": 30,
}
_FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}

_backend_ready = False


class ModelLoadError(ServerError):
    pass


def _init_backend(verbose: bool) -> None:
    global _backend_ready
    if _backend_ready:
        return
    ll.llama_backend_init()
    _install_log_callback(verbose)
    _backend_ready = True


# libllama logs through a C callback; route it to Python logging (debug unless -v).
@ll.llama_log_callback
def _llama_log(level, text, user_data):  # pragma: no cover - called from C
    if _llama_log.verbose:
        try:
            msg = text.decode("utf-8", "replace").rstrip()
        except Exception:
            return
        if msg:
            log.debug("libllama: %s", msg)


_llama_log.verbose = False


def _install_log_callback(verbose: bool) -> None:
    _llama_log.verbose = verbose
    ll.llama_log_set(_llama_log, ctypes.c_void_p(0))


@dataclass
class ModelInfo:
    path: str
    alias: str
    n_vocab: int
    n_ctx_train: int
    n_embd: int
    n_params: int
    size: int
    desc: str
    chat_template: str
    add_bos: bool
    bos: int
    eos: int


class Model:
    """Owns llama_model + llama_context; created by the scheduler thread."""

    def __init__(self, config: Config):
        _init_backend(config.verbose)
        self.config = config
        path = config.model
        size = os.path.getsize(path)
        log.info("loading model %s (%.1f MiB)", path, size / 2**20)
        t0 = time.perf_counter()

        mparams = ll.llama_model_default_params()
        mparams.n_gpu_layers = config.n_gpu_layers if config.n_gpu_layers >= 0 else 999
        mparams.use_mmap = config.use_mmap
        mparams.use_mlock = config.use_mlock
        mparams.use_extra_bufts = use_extra_buffer_types(config.repack)
        last = [-1]

        @ll.llama_progress_callback
        def progress(fraction, user_data):
            pct = int(fraction * 100)
            if pct // 25 > last[0] // 25 or pct == 100 and last[0] != 100:
                log.info("loading model: %d%%", pct)
                last[0] = pct
            return True

        mparams.progress_callback = progress
        self._progress = progress  # keep the callback alive while C may call it
        self.model = ll.llama_model_load_from_file(path.encode(), mparams)
        if not self.model:
            raise ModelLoadError(f"failed to load model from {path}")
        self.vocab = ll.llama_model_get_vocab(self.model)
        self.n_vocab = ll.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train = ll.llama_model_n_ctx_train(self.model)

        n_slots = config.slots
        n_ctx = config.n_ctx or self.n_ctx_train
        cparams = ll.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = config.n_batch
        cparams.n_ubatch = config.n_ubatch
        cparams.n_seq_max = n_slots
        threads = config.n_threads if config.n_threads > 0 else (os.cpu_count() or 1)
        cparams.n_threads = threads
        cparams.n_threads_batch = config.n_threads_batch if config.n_threads_batch > 0 else threads
        cparams.type_k = _GGML_TYPES[config.cache_type_k]
        cparams.type_v = _GGML_TYPES[config.cache_type_v]
        cparams.flash_attn_type = _FLASH_ATTN[config.flash_attn]
        cparams.kv_unified = config.unified_kv
        cparams.no_perf = True
        self.ctx = ll.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            ll.llama_model_free(self.model)
            raise ModelLoadError(f"failed to create a context for {path} (n_ctx={n_ctx}, n_seq_max={n_slots})")
        self.memory = ll.llama_get_memory(self.ctx)
        self.n_ctx = ll.llama_n_ctx(self.ctx)
        # Each slot gets n_ctx / n_parallel unless the KV cache is unified (then each may use all of it).
        self.n_ctx_slot = min(ll.llama_n_ctx_seq(self.ctx), self.n_ctx_train)
        self.n_batch = ll.llama_n_batch(self.ctx)
        self.threads = threads

        self.info = ModelInfo(
            path=path,
            alias=config.model_alias,
            n_vocab=self.n_vocab,
            n_ctx_train=self.n_ctx_train,
            n_embd=ll.llama_model_n_embd(self.model),
            n_params=ll.llama_model_n_params(self.model),
            size=ll.llama_model_size(self.model),
            desc=self._desc(),
            chat_template=self._meta("tokenizer.chat_template"),
            add_bos=bool(ll.llama_vocab_get_add_bos(self.vocab)),
            bos=ll.llama_vocab_bos(self.vocab),
            eos=ll.llama_vocab_eos(self.vocab),
        )
        self.eog_tokens = [t for t in range(self.n_vocab) if ll.llama_vocab_is_eog(self.vocab, t)]
        self.eog_set = frozenset(self.eog_tokens)
        # Every token's text, once: detokenizing a generated token is then a list lookup.
        self.pieces = [self._piece(t, special=False) for t in range(self.n_vocab)]
        log.info(
            "model loaded in %.2f s: %s, n_ctx = %d, %d slots of %d tokens, kv_unified = %s",
            time.perf_counter() - t0, self.info.desc, self.n_ctx, n_slots, self.n_ctx_slot, config.unified_kv,
        )

    # --- metadata ---

    def _meta(self, key: str) -> str:
        buf = ctypes.create_string_buffer(1 << 16)
        n = ll.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf))
        if n < 0:
            return ""
        if n >= len(buf):
            buf = ctypes.create_string_buffer(n + 1)
            ll.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", "replace")

    def _desc(self) -> str:
        buf = ctypes.create_string_buffer(256)
        ll.llama_model_desc(self.model, buf, len(buf))
        return buf.value.decode("utf-8", "replace")

    # --- vocabulary (read-only: safe from any thread) ---

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        n_max = len(data) + 8
        buf = (ll.llama_token * n_max)()
        n = ll.llama_tokenize(self.vocab, data, len(data), buf, n_max, add_special, parse_special)
        if n < 0:
            n_max = -n
            buf = (ll.llama_token * n_max)()
            n = ll.llama_tokenize(self.vocab, data, len(data), buf, n_max, add_special, parse_special)
        return list(buf[:n])

    def _piece(self, token: int, special: bool) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = ll.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = ll.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        return buf.raw[:n]

    def piece(self, token: int, special: bool = False) -> bytes:
        if not special:
            return self.pieces[token]
        return self._piece(token, special=True)

    def detokenize(self, tokens: list[int], special: bool = False) -> str:
        if not tokens:
            return ""
        arr = (ll.llama_token * len(tokens))(*tokens)
        size = max(64, len(tokens) * 16)
        while True:
            buf = ctypes.create_string_buffer(size)
            n = ll.llama_detokenize(self.vocab, arr, len(tokens), buf, size, False, special)
            if n >= 0:
                return buf.raw[:n].decode("utf-8", "replace")
            size = -n + 1

    def valid_token(self, token: int) -> bool:
        return 0 <= token < self.n_vocab

    def close(self) -> None:
        if getattr(self, "ctx", None):
            ll.llama_free(self.ctx)
            self.ctx = None
        if getattr(self, "model", None):
            ll.llama_model_free(self.model)
            self.model = None
