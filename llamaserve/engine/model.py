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
from llamaserve.engine import placement
from llamaserve.engine.devices import descriptions as device_descriptions
from llamaserve.engine.control_vector import ControlVectorError, apply_control_vectors
from llamaserve.engine.lora import LoraSet
from llamaserve.engine.media import MARKER, MediaPrompt, Projector, ProjectorLoadError
from llamaserve.engine.model_params import ParamError, apply_context_params, build_model_params
from llamaserve.engine.numa import NumaError, init_numa
from llamaserve.engine.rpc import RpcError
from llamaserve.engine.rpc import add_servers as add_rpc_servers
from llamaserve.engine.rpc import detect_dead_peers
from llamaserve.engine.threads import ThreadpoolError, make_threadpools
from llamaserve.engine.warmup import warm_up
from llamaserve.errors import MediaUnsupported, ServerError, Unavailable

log = logging.getLogger("llamaserve.engine")

_GGML_TYPES = {
    "f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "iq4_nl": 20, "bf16": 30,
}
_FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}
# llama_pooling_type values; "" = unspecified (the model's own)
POOLING_IDS = {"": -1, "none": 0, "mean": 1, "cls": 2, "last": 3, "rank": 4}
POOLING_NAMES = {v: k for k, v in POOLING_IDS.items() if k}

_backend_ready = False
CPU_PROMPT_CHUNK = 64  # tokens: about one short chat prompt (see default_prompt_chunk)


class ModelLoadError(ServerError):
    pass


def _pad(n: int, to: int) -> int:
    return (n + to - 1) // to * to


def embedding_batch_size(n_batch: int, n_ubatch: int, n_ctx: int, n_seq: int, unified: bool, mean_pooling: bool) -> int:
    """n_batch = n_ubatch for an embedding context, chosen so that libllama cannot abort.

    Every input must be decoded whole in one ubatch (pooling reads the whole sequence, and
    non-causal models cannot split at all), so a step never holds more than n_ubatch tokens:
    n_batch = n_ubatch, as llama-server does. With mean pooling, llama_init_from_model aborts
    the process (GGML_ASSERT in graph_reserve) unless the worst-case ubatch it reserves is a
    multiple of n_seq_max. That ubatch is min(n_ctx as the context pads it, n_ubatch as the
    context clamps it to the unpadded n_ctx): returning a multiple of n_seq no larger than
    either makes it exactly that multiple. None left (more slots than tokens) → refuse.
    """
    size = min(n_batch, n_ubatch)
    if not mean_pooling:
        return size
    padded = _pad(n_ctx, 256)  # what llama_context does to n_ctx
    if not unified:
        padded = _pad(padded // n_seq, 256) * n_seq
    fixed = min(padded, n_ctx, size) // n_seq * n_seq
    if fixed == 0:
        raise ModelLoadError(
            f"mean pooling needs a batch of at least one token per slot, but n_ubatch is {min(n_ctx, size)} "
            f"for {n_seq} slots: use fewer slots (-np) or a larger -ub"
        )
    return fixed


def _init_backend(verbose: bool) -> None:
    global _backend_ready
    if _backend_ready:
        return
    ll.llama_backend_init()
    _install_log_callback(verbose)
    _backend_ready = True


_GGML_LOG_LEVEL_ERROR = 4  # ggml.h: NONE, DEBUG, INFO, WARN, ERROR, CONT


# libllama logs through a C callback; route it to Python logging (debug unless -v).
@ll.llama_log_callback
def _llama_log(level, text, user_data):  # pragma: no cover - called from C
    if level == _GGML_LOG_LEVEL_ERROR:
        # kept so that a failed load (e.g. a LoRA adapter for another model) can say why
        _llama_log.last_error = text.decode("utf-8", "replace").strip()
    if _llama_log.placement is not None:
        line = text.decode("utf-8", "replace").strip()
        if placement.wanted(line):
            _llama_log.placement.append(line)
    if _llama_log.verbose:
        try:
            msg = text.decode("utf-8", "replace").rstrip()
        except Exception:
            return
        if msg:
            log.debug("libllama: %s", msg)


_llama_log.verbose = False
_llama_log.last_error = ""
_llama_log.placement = None  # a list while a model loads: its load_tensors lines (engine/placement.py)


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
    sep: int = -1
    add_eos: bool = False
    add_sep: bool = False
    rerank_template: str = ""  # the GGUF's "rerank" prompt template with {query} and {document}, if any
    fim: dict[str, int] | None = None  # FIM token ids: pre, suf, mid, pad, rep, sep (-1 = missing)
    pooling: str = "none"  # the context's pooling type (matters in embedding mode)
    n_embd_out: int = 0  # length of an embedding vector
    ftype: str = ""  # the weights' file type, as libllama names it ("Q4_1", ...)
    chat_template_tool_use: str = ""  # the GGUF's "tool_use" chat template, if any
    bos_text: str = ""  # the BOS and EOS tokens' text (kept here: /props shows them while the model sleeps)
    eos_text: str = ""


class Model:
    """Owns llama_model + llama_context; created by the scheduler thread."""

    def __init__(self, config: Config):
        _init_backend(config.verbose)
        self.config = config
        path = config.model
        size = os.path.getsize(path)
        try:
            init_numa(config.numa)  # process-wide, before the weights are mapped
        except NumaError as exc:
            raise ModelLoadError(str(exc)) from None
        log.info("loading model %s (%.1f MiB)", path, size / 2**20)
        t0 = time.perf_counter()
        last = [-1]

        @ll.llama_progress_callback
        def progress(fraction, user_data):
            pct = int(fraction * 100)
            if pct // 25 > last[0] // 25 or pct == 100 and last[0] != 100:
                log.info("loading model: %d%%", pct)
                last[0] = pct
            return True

        self._progress = progress  # keep the callback alive while C may call it
        try:
            add_rpc_servers(config.rpc_servers)  # before the device list is read (-dev, the split)
            # kept for the model's lifetime: mparams points into its arrays (overrides, devices)
            self.model_params = build_model_params(config, progress)
        except (ParamError, RpcError) as exc:
            raise ModelLoadError(str(exc)) from None
        _llama_log.last_error = ""
        _llama_log.placement = []
        try:
            self.model = ll.llama_model_load_from_file(path.encode(), self.model_params.params)
        finally:
            lines, _llama_log.placement = _llama_log.placement, None
        self.placement = placement.parse(lines)
        if config.rpc_servers or self.placement.offloaded[0]:
            log.info("%s", self.placement.summary(device_descriptions()))
        if not self.model:
            reason = _llama_log.last_error
            raise ModelLoadError(f"failed to load model from {path}" + (f": {reason}" if reason else ""))
        self.projector: Projector | None = None
        try:
            self._init_context(config, path, t0)
            if config.rpc_servers:
                n = detect_dead_peers(config.rpc_servers)
                log.info("RPC: keepalive on %d connection%s, so that a server that vanishes is noticed within ~15 s",
                         n, "s" * (n != 1))
            if config.mmproj_path:
                self.projector = self._load_projector(config)
            # what it takes, kept past close() (for /props while the server sleeps)
            self.modalities = self.projector.modalities if self.projector is not None else {"vision": False, "video": False, "audio": False}
        except BaseException:
            self.close()
            raise

    def _load_projector(self, config: Config) -> Projector:
        log.info("loading multimodal projector %s", config.mmproj_path)
        try:
            p = Projector(config.mmproj_path, self.model, self.threads,
                          use_gpu=config.mmproj_offload and config.n_gpu_layers != 0, image_min_tokens=config.image_min_tokens,
                          image_max_tokens=config.image_max_tokens, batch_max_tokens=config.mtmd_batch_max_tokens,
                          verbose=config.verbose)
        except ProjectorLoadError as exc:
            raise ModelLoadError(str(exc)) from None
        log.info("multimodal projector loaded: %s", ", ".join(k for k, v in p.modalities.items() if v) or "no input modality")
        return p

    def placement_json(self) -> dict:
        """Which device holds how many layers, and each weight buffer's size (engine/placement.py)."""
        return self.placement.to_json(device_descriptions())

    def tokenize_media(self, text: str, media: list[bytes], add_special: bool = True, parse_special: bool = True) -> MediaPrompt:
        """A prompt of text with media markers and the media (bytes) they stand for (engine/media.py)."""
        if self.projector is None:
            raise MediaUnsupported('"prompt"', "multimodal")
        return self.projector.tokenize(text, media, add_special, parse_special)

    def _init_context(self, config: Config, path: str, t0: float) -> None:
        self.vocab = ll.llama_model_get_vocab(self.model)
        self.n_vocab = ll.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train = ll.llama_model_n_ctx_train(self.model)

        n_slots = config.slots
        per_slot = config.kv_unified_per_slot
        if config.n_ctx == 0 and per_slot > 0:
            n_ctx = n_slots * per_slot  # as llama-server: the pool sized from the per-slot cap, unless -c pins it
            log.info("--kv-unified-per-slot: KV cache of %d slots x %d = %d tokens", n_slots, per_slot, n_ctx)
        else:
            n_ctx = config.n_ctx or self.n_ctx_train
        n_batch, n_ubatch = config.n_batch, config.n_ubatch
        pooling = POOLING_IDS[config.pooling_type]
        # Embedding mode always unifies the KV cache: with one stream per sequence libllama splits a
        # batch into equal-length slices of every sequence, so a pooled sequence would span ubatches
        # (its mean or CLS vector then covers only the last slice). Embedding inputs are stateless and
        # a step holds at most n_ubatch tokens, so one shared cache costs nothing.
        unified = config.unified_kv or config.embedding_mode
        if config.embedding_mode:
            model_pooling = pooling if pooling >= 0 else self._meta_int(f"{self._meta('general.architecture')}.pooling_type")
            n_batch = n_ubatch = embedding_batch_size(
                config.n_batch, config.n_ubatch, n_ctx, n_slots, unified, model_pooling == POOLING_IDS["mean"])
            if n_batch != config.n_batch or n_ubatch != config.n_ubatch:
                log.info("embedding mode: n_batch = n_ubatch = %d (from -b %d, -ub %d, %d slots)", n_batch, config.n_batch, config.n_ubatch, n_slots)
        cparams = ll.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = n_batch
        cparams.n_ubatch = n_ubatch
        cparams.n_seq_max = n_slots
        cparams.embeddings = config.embedding_mode
        cparams.pooling_type = pooling
        threads = config.n_threads if config.n_threads > 0 else (os.cpu_count() or 1)
        threads_batch = config.n_threads_batch if config.n_threads_batch > 0 else threads
        cparams.n_threads = threads
        cparams.n_threads_batch = threads_batch
        cparams.type_k = _GGML_TYPES[config.cache_type_k]
        cparams.type_v = _GGML_TYPES[config.cache_type_v]
        cparams.flash_attn_type = _FLASH_ATTN[config.flash_attn]
        cparams.kv_unified = unified
        try:
            apply_context_params(cparams, config)
        except ParamError as exc:
            raise ModelLoadError(str(exc)) from None
        self.unified_kv = unified
        cparams.no_perf = True
        self.context_params = cparams
        _llama_log.last_error = ""
        self.ctx = ll.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            reason = _llama_log.last_error
            raise ModelLoadError(f"failed to create a context for {path} (n_ctx={n_ctx}, n_seq_max={n_slots})"
                                 + (f": {reason}" if reason else ""))
        try:
            self.threadpools = make_threadpools(self.ctx, config, threads, threads_batch)
        except ThreadpoolError as exc:
            raise ModelLoadError(str(exc)) from None
        _llama_log.last_error = ""
        self.lora = LoraSet(self.model, config.lora, lambda: _llama_log.last_error)
        try:
            self.control_vector = apply_control_vectors(self.ctx, self.model, config.control_vectors, config.control_vector_layers)
        except ControlVectorError as exc:
            raise ModelLoadError(str(exc)) from None
        self.memory = ll.llama_get_memory(self.ctx)
        # Encoder-only models (BERT and kin) have no KV cache: they embed, they cannot generate.
        self.has_memory = bool(self.memory)
        # Without --swa-full the sliding-window layers keep only the last n_swa positions, so a
        # cached prefix is usable only when its window is still there (see PromptReuse.usable_prefix).
        self.n_swa = 0 if config.swa_full else ll.llama_model_n_swa(self.model)
        self.n_ctx = ll.llama_n_ctx(self.ctx)
        # Each slot gets n_ctx / n_parallel unless the KV cache is unified (then each may use all of it).
        self.n_ctx_slot = min(ll.llama_n_ctx_seq(self.ctx), self.n_ctx_train)
        if per_slot > 0:
            if per_slot > self.n_ctx_slot:
                log.warning("--kv-unified-per-slot %d is above what a slot can hold (%d): it has no effect; "
                            "raise -c, or leave -c out to size the KV cache from it", per_slot, self.n_ctx_slot)
            self.n_ctx_slot = min(self.n_ctx_slot, per_slot)
        self.n_batch = ll.llama_n_batch(self.ctx)
        self.n_ubatch = ll.llama_n_ubatch(self.ctx)
        self.pooling = ll.llama_pooling_type(self.ctx)
        self.n_embd_out = ll.llama_model_n_embd_out(self.model)
        self.n_cls_out = ll.llama_model_n_cls_out(self.model)
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
            sep=ll.llama_vocab_sep(self.vocab),
            add_eos=bool(ll.llama_vocab_get_add_eos(self.vocab)),
            add_sep=bool(ll.llama_vocab_get_add_sep(self.vocab)),
            rerank_template=(ll.llama_model_chat_template(self.model, b"rerank") or b"").decode("utf-8", "replace"),
            fim={name: getattr(ll, f"llama_vocab_fim_{name}")(self.vocab) for name in ("pre", "suf", "mid", "pad", "rep", "sep")},
            pooling=POOLING_NAMES.get(self.pooling, "none"),
            n_embd_out=self.n_embd_out,
            ftype=(ll.llama_ftype_name(ll.llama_model_ftype(self.model)) or b"").decode("utf-8", "replace"),
            chat_template_tool_use=(ll.llama_model_chat_template(self.model, b"tool_use") or b"").decode("utf-8", "replace"),
        )
        for attr, token in (("bos_text", self.info.bos), ("eos_text", self.info.eos)):
            if token >= 0:
                setattr(self.info, attr, self._piece(token, special=True).decode("utf-8", "replace"))
        self.eog_tokens = [t for t in range(self.n_vocab) if ll.llama_vocab_is_eog(self.vocab, t)]
        self.eog_set = frozenset(self.eog_tokens)
        # Every token's text, once: detokenizing a generated token is then a list lookup.
        self.pieces = [self._piece(t, special=False) for t in range(self.n_vocab)]
        self.warmed_up = False
        if config.warmup:
            self.warmed_up = warm_up(self.model, self.ctx, self.vocab, min(self.n_batch, self.n_ubatch))
        log.info(
            "model loaded in %.2f s: %s, n_ctx = %d, %d slots of %d tokens, kv_unified = %s%s",
            time.perf_counter() - t0, self.info.desc, self.n_ctx, n_slots, self.n_ctx_slot, unified,
            f", embeddings with {self.info.pooling} pooling, n_ubatch = {self.n_ubatch}" if config.embedding_mode else "",
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

    def _meta_int(self, key: str, default: int = -1) -> int:
        try:
            return int(self._meta(key))
        except ValueError:
            return default

    def default_prompt_chunk(self) -> int:
        """Config.prompt_chunk's auto value. Where the layers run on a GPU a step's time hardly
        grows with its tokens, so prompts batch freely (up to n_batch, as llama-server); on a CPU
        it grows in proportion (measured: 60 prompt tokens 340 ms, 8 prompts of 60 in one step
        2.5 s), so a step takes about one short prompt."""
        if self.config.n_gpu_layers != 0 and ll.llama_supports_gpu_offload():
            return self.n_batch
        return CPU_PROMPT_CHUNK

    def _desc(self) -> str:
        buf = ctypes.create_string_buffer(256)
        ll.llama_model_desc(self.model, buf, len(buf))
        return buf.value.decode("utf-8", "replace")

    # --- vocabulary (read-only: safe from any thread) ---

    def _vocab(self):
        # after close() (the server sleeps, or stops) the vocabulary is gone: a bug that gets here
        # then fails one request instead of the process
        if self.vocab is None:
            raise Unavailable("the model is not loaded")
        return self.vocab

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = True) -> list[int]:
        vocab = self._vocab()
        data = text.encode("utf-8")
        n_max = len(data) + 8
        buf = (ll.llama_token * n_max)()
        n = ll.llama_tokenize(vocab, data, len(data), buf, n_max, add_special, parse_special)
        if n < 0:
            n_max = -n
            buf = (ll.llama_token * n_max)()
            n = ll.llama_tokenize(vocab, data, len(data), buf, n_max, add_special, parse_special)
        return list(buf[:n])

    def _piece(self, token: int, special: bool) -> bytes:
        vocab = self._vocab()
        buf = ctypes.create_string_buffer(64)
        n = ll.llama_token_to_piece(vocab, token, buf, len(buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = ll.llama_token_to_piece(vocab, token, buf, len(buf), 0, special)
        return buf.raw[:n]

    def piece(self, token: int, special: bool = False) -> bytes:
        if not special:
            return self.pieces[token]
        return self._piece(token, special=True)

    def detokenize(self, tokens: list[int], special: bool = False) -> str:
        if not tokens:
            return ""
        if min(tokens) < 0:
            # a prompt with media (engine/media.py): each run of one pseudo id is shown as the marker
            parts, run = [], []
            for i, t in enumerate(tokens):
                if t >= 0:
                    run.append(t)
                elif i == 0 or tokens[i - 1] != t:
                    parts += [self.detokenize(run, special), MARKER]
                    run = []
            return "".join(parts) + self.detokenize(run, special)
        vocab = self._vocab()
        arr = (ll.llama_token * len(tokens))(*tokens)
        size = max(64, len(tokens) * 16)
        while True:
            buf = ctypes.create_string_buffer(size)
            n = ll.llama_detokenize(vocab, arr, len(tokens), buf, size, False, special)
            if n >= 0:
                return buf.raw[:n].decode("utf-8", "replace")
            size = -n + 1

    def valid_token(self, token: int) -> bool:
        return 0 <= token < self.n_vocab

    def close(self) -> None:
        if getattr(self, "projector", None) is not None:
            self.projector.close()
            self.projector = None
        if getattr(self, "ctx", None):
            ll.llama_free(self.ctx)
            self.ctx = None
        if getattr(self, "threadpools", None) is not None:
            self.threadpools.free()  # after the context that computes with them
            self.threadpools = None
        if getattr(self, "lora", None) is not None:
            self.lora.free()  # after the context that used them, before the model that owns them
        if getattr(self, "model", None):
            self.vocab = None  # owned by the model
            ll.llama_model_free(self.model)
            self.model = None
