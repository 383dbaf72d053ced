"""The draft model (-md) and its own llama_context, one sequence per slot, on the scheduler thread.

Each draft sequence follows its slot lazily: before drafting, the tokens the draft context holds for
the slot are compared with the slot's, what differs is removed and what is missing is evaluated (the
prompt at the first draft, the tokens accepted since the last one after that). The target's KV
operations (prompt reuse, context shift, slot files) therefore never need a twin here; a sequence
that went another way costs one catch-up. The drafts of all slots are batched: one llama_decode per
drafted position for all of them.
"""

from __future__ import annotations

import ctypes
import logging
import os
from dataclasses import dataclass

import llama_cpp.llama_cpp as ll
import numpy as np

from llamaserve.config import Config
from llamaserve.engine.batch import Batch
from llamaserve.engine.model_params import ParamError, apply_context_params, build_model_params
from llamaserve.engine.slot import common_prefix
from llamaserve.engine.threads import ThreadpoolError, make_threadpools
from llamaserve.errors import ServerError

log = logging.getLogger("llamaserve.engine")

# llama.cpp's rule for a draft model: the same kind of vocabulary, the same BOS/EOS handling, sizes
# within this many tokens, the same text for every token id from this one on
VOCAB_MAX_SIZE_DIFFERENCE = 128
VOCAB_CHECK_START_TOKEN_ID = 5
_GGML_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "iq4_nl": 20, "bf16": 30}
P_MIN_TOP_K = 10  # the draft's confidence is its top token's share among its 10 best, as llama.cpp measures it


class DraftModelError(ServerError):
    """The draft model cannot be used: start-up stops with this reason."""


def vocab_mismatch(target, draft) -> str:
    """Why the draft vocabulary cannot stand in for the target's ("" = it can)."""
    vt, vd = ll.llama_vocab_type(target), ll.llama_vocab_type(draft)
    if vt != vd:
        return f"the vocabulary types differ (target {vt}, draft {vd})"
    for what, add, token in (("BOS", ll.llama_vocab_get_add_bos, ll.llama_vocab_bos),
                             ("EOS", ll.llama_vocab_get_add_eos, ll.llama_vocab_eos)):
        if add(target) != add(draft) or (add(target) and token(target) != token(draft)):
            return (f"the {what} tokens differ (target: add {bool(add(target))}, id {token(target)}; "
                    f"draft: add {bool(add(draft))}, id {token(draft)})")
    nt, nd = ll.llama_vocab_n_tokens(target), ll.llama_vocab_n_tokens(draft)
    if abs(nt - nd) > VOCAB_MAX_SIZE_DIFFERENCE:
        return f"the vocabulary sizes differ by more than {VOCAB_MAX_SIZE_DIFFERENCE} (target {nt}, draft {nd})"
    for i in range(VOCAB_CHECK_START_TOKEN_ID, min(nt, nd)):
        a, b = ll.llama_vocab_get_text(target, i), ll.llama_vocab_get_text(draft, i)
        if a != b:
            return f"token {i} differs (target {a!r}, draft {b!r})"
    return ""


def draft_config(config: Config) -> Config:
    """The target's Config with the draft model's own settings in place (llama-server inherits the rest)."""
    s = config.spec
    inherit = lambda own, target: target if own is None else own  # noqa: E731
    return config.replace(
        model=s.draft_model, lora=[], control_vectors=[], kv_overrides=[],
        n_gpu_layers=inherit(s.draft_n_gpu_layers, config.n_gpu_layers),
        devices=s.draft_devices or config.devices,
        tensor_overrides=s.draft_tensor_overrides, cpu_moe=s.draft_cpu_moe, n_cpu_moe=s.draft_n_cpu_moe, n_cpu_ffn=0,
        cache_type_k=s.draft_cache_type_k, cache_type_v=s.draft_cache_type_v,
        n_threads=s.draft_threads if s.draft_threads > 0 else config.n_threads,
        n_threads_batch=s.draft_threads_batch if s.draft_threads_batch > 0 else (
            s.draft_threads if s.draft_threads > 0 else config.n_threads_batch),
        cpu_mask=inherit(s.draft_cpu_mask, config.cpu_mask), cpu_range=inherit(s.draft_cpu_range, config.cpu_range),
        cpu_strict=inherit(s.draft_cpu_strict, config.cpu_strict), priority=inherit(s.draft_priority, config.priority),
        cpu_mask_batch=s.draft_cpu_mask_batch, cpu_range_batch=None, cpu_strict_batch=s.draft_cpu_strict_batch,
        priority_batch=s.draft_priority_batch,
    )


@dataclass
class DraftRequest:
    seq: int  # the slot
    history: np.ndarray  # the slot's tokens, the one just sampled (not yet decoded) last
    n_max: int  # the most tokens to draft
    n_min: int = 0
    p_min: float = 0.0
    i: int = -1  # batch index of its latest token, whose logits give the next draft token


class DraftModel:
    def __init__(self, config: Config, target_vocab, n_ctx: int, n_batch: int, n_ubatch: int, n_seq: int,
                 unified_kv: bool, target_n_vocab: int):
        dconf = draft_config(config)
        path = dconf.model
        if not os.path.isfile(path):
            raise DraftModelError(f"draft model {path}: no such file")
        try:
            self.model_params = build_model_params(dconf)  # kept: the params point into its arrays
        except ParamError as exc:
            raise DraftModelError(f"draft model: {exc}") from None
        self.model = ll.llama_model_load_from_file(path.encode(), self.model_params.params)
        if not self.model:
            raise DraftModelError(f"failed to load the draft model from {path}")
        self.ctx = None
        self.threadpools = None
        try:
            self.vocab = ll.llama_model_get_vocab(self.model)
            why = vocab_mismatch(target_vocab, self.vocab)
            if why:
                raise DraftModelError(f"the draft model {path} cannot draft for this model: {why}")
            self.n_vocab = ll.llama_vocab_n_tokens(self.vocab)
            self.target_n_vocab = target_n_vocab
            cparams = ll.llama_context_default_params()
            cparams.n_ctx = n_ctx
            cparams.n_batch = n_batch
            cparams.n_ubatch = n_ubatch
            cparams.n_seq_max = n_seq
            cparams.kv_unified = unified_kv
            threads = dconf.n_threads if dconf.n_threads > 0 else (os.cpu_count() or 1)
            threads_batch = dconf.n_threads_batch if dconf.n_threads_batch > 0 else threads
            cparams.n_threads, cparams.n_threads_batch = threads, threads_batch
            cparams.type_k = _GGML_TYPES[dconf.cache_type_k]
            cparams.type_v = _GGML_TYPES[dconf.cache_type_v]
            cparams.no_perf = True
            apply_context_params(cparams, dconf)
            self.ctx = ll.llama_init_from_model(self.model, cparams)
            if not self.ctx:
                raise DraftModelError(f"failed to create a context for the draft model {path}")
            self.threadpools = make_threadpools(self.ctx, dconf, threads, threads_batch)
        except (ParamError, ThreadpoolError) as exc:
            self.close()
            raise DraftModelError(f"draft model: {exc}") from None
        except BaseException:
            self.close()
            raise
        self.memory = ll.llama_get_memory(self.ctx)
        self.n_ctx_seq = ll.llama_n_ctx_seq(self.ctx)
        self.batch = Batch(max(ll.llama_n_batch(self.ctx), n_seq), n_seq)
        self.cache: list[list[int]] = [[] for _ in range(n_seq)]  # tokens in each draft sequence
        buf = ctypes.create_string_buffer(256)
        ll.llama_model_desc(self.model, buf, len(buf))
        self.desc = buf.value.decode("utf-8", "replace")
        log.info("draft model %s loaded: %s, context of %d tokens", path, self.desc, ll.llama_n_ctx(self.ctx))

    # --- drafting ---

    def draft(self, requests: list[DraftRequest]) -> dict[int, list[int]]:
        """Greedy drafts for the requests' sequences, batched: {seq: tokens}. A draft ends at n_max,
        at a token the draft model is less sure of than p_min, or at one the target does not have."""
        requests = [r for r in requests if r.n_max > 0 and len(r.history) + r.n_max < self.n_ctx_seq]
        if not requests:
            return {}
        if not self._catch_up(requests):
            return {}
        drafts: dict[int, list[int]] = {r.seq: [] for r in requests}
        live = {r.seq: r for r in requests}
        batch = self.batch
        while live:
            picks = {}
            for seq, r in live.items():
                token = self._pick(r)
                if token is None:
                    continue
                drafts[seq].append(token)
                picks[seq] = token
            live = {seq: live[seq] for seq, t in picks.items() if len(drafts[seq]) < live[seq].n_max}
            if not live:
                break
            batch.clear()
            for seq in live:
                live[seq].i = batch.add(picks[seq], len(self.cache[seq]), seq, True)
            if batch.decode(self.ctx) != 0:
                break
            for seq in live:
                self.cache[seq].append(picks[seq])
        return {r.seq: drafts[r.seq] for r in requests if drafts[r.seq] and len(drafts[r.seq]) >= r.n_min}

    def _pick(self, r: DraftRequest) -> int | None:
        logits = np.ctypeslib.as_array(ll.llama_get_logits_ith(self.ctx, r.i), shape=(self.n_vocab,))
        token = int(logits.argmax())
        if token >= self.target_n_vocab:
            return None
        if r.p_min > 0:
            k = min(P_MIN_TOP_K, self.n_vocab)
            top = logits[np.argpartition(-logits, k - 1)[:k]].astype(np.float64)
            e = np.exp(top - top.max())
            if e.max() / e.sum() < r.p_min:
                return None
        return token

    def _catch_up(self, requests: list[DraftRequest]) -> bool:
        """Bring each sequence to its slot's tokens; the last one is decoded with logits (r.i)."""
        pending: dict[int, np.ndarray] = {}
        for r in requests:
            cache = self.cache[r.seq]
            keep = min(common_prefix(cache, r.history), len(r.history) - 1)
            if keep < len(cache):
                ll.llama_memory_seq_rm(self.memory, r.seq, keep if keep > 0 else -1, -1)
                del cache[keep:]
            pending[r.seq] = r.history[keep:]
        batch = self.batch
        # everything but the last token of each, in as many decodes as the batch needs
        while any(len(p) > 1 for p in pending.values()):
            batch.clear()
            spans = []
            for seq, p in pending.items():
                k = min(len(p) - 1, batch.free)
                if k <= 0:
                    continue
                batch.add_span(p[:k], len(self.cache[seq]), seq, False)
                spans.append((seq, k))
            if not self._decode(requests):
                return False
            for seq, k in spans:
                self.cache[seq].extend(pending[seq][:k].tolist())
                pending[seq] = pending[seq][k:]
        batch.clear()
        for r in requests:
            r.i = batch.add(int(pending[r.seq][0]), len(self.cache[r.seq]), r.seq, True)
        if not self._decode(requests):
            return False
        for r in requests:
            self.cache[r.seq].append(int(pending[r.seq][0]))
        return True

    def _decode(self, requests: list[DraftRequest]) -> bool:
        ret = self.batch.decode(self.ctx)
        if ret == 1:
            # the draft KV cache is full: sequences of slots not drafting now give way, once
            busy = {r.seq for r in requests}
            idle = [seq for seq, cache in enumerate(self.cache) if seq not in busy and cache]
            for seq in idle:
                self.forget(seq)
            if idle:
                ret = self.batch.decode(self.ctx)
        if ret != 0:
            log.warning("draft model: llama_decode failed (%d) on %d tokens; no drafts this step", ret, self.batch.n)
            for r in requests:  # what it holds of them is unknown now: evaluated again next time
                self.forget(r.seq)
            return False
        return True

    def forget(self, seq: int) -> None:
        ll.llama_memory_seq_rm(self.memory, seq, -1, -1)
        self.cache[seq].clear()

    def close(self) -> None:
        if self.ctx:
            ll.llama_free(self.ctx)
            self.ctx = None
        if self.threadpools is not None:
            self.threadpools.free()
            self.threadpools = None
        if self.model:
            ll.llama_model_free(self.model)
            self.model = None
