"""Per-request llama_sampler chains, built as llama.cpp's common sampler builds them.

All work over the vocabulary happens in libllama's C samplers or in numpy;
nothing here loops over tokens in Python.
"""

from __future__ import annotations

import ctypes
import threading
import math

import llama_cpp.llama_cpp as ll
import numpy as np

from llamaserve.engine.types import SamplingParams, TokenProb
from llamaserve.errors import InvalidRequest

_TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])

# libllama parses and walks grammars recursively, one C stack frame per nesting level; a
# bounded grammar length bounds that depth, and every thread that compiles grammars gets a
# stack with room for it (virtual memory: only the pages it touches are used).
MAX_GRAMMAR_CHARS = 256 << 10
GRAMMAR_STACK_BYTES = 128 << 20
_stack_size_lock = threading.Lock()


def start_with_grammar_stack(thread: threading.Thread) -> None:
    """Start `thread` with a stack deep enough for any grammar under MAX_GRAMMAR_CHARS."""
    with _stack_size_lock:
        previous = threading.stack_size(GRAMMAR_STACK_BYTES)
        try:
            thread.start()
        finally:
            threading.stack_size(previous)


def check_grammar_length(grammar: str) -> None:
    if len(grammar) > MAX_GRAMMAR_CHARS:
        raise InvalidRequest(f"grammar too long: {len(grammar)} characters, the limit is {MAX_GRAMMAR_CHARS}")


class NoTokenAllowed(InvalidRequest):
    """The chain left no token to sample (e.g. a finished grammar with ignore_eos)."""


def grammar_compiles(model, grammar: str, root: str = "root") -> bool:
    """Whether libllama accepts `grammar` for this model's vocabulary (compiled, then freed).

    Reads only the vocabulary, so any thread may call it: requests are checked before they are queued.
    The compile runs on a thread of its own, whose stack has room for the deepest grammar allowed
    (the caller's may not: the event loop runs on the main thread). Too long a grammar is refused."""
    check_grammar_length(grammar)
    compiled: list[bool] = []

    def compile_once() -> None:
        sampler = ll.llama_sampler_init_grammar(model.vocab, grammar.encode(), root.encode())
        if sampler:
            ll.llama_sampler_free(sampler)
        compiled.append(bool(sampler))

    thread = threading.Thread(target=compile_once, name="llamaserve-grammar-check", daemon=True)
    start_with_grammar_stack(thread)
    thread.join()
    return compiled[0]


def _grammar_sampler(model, p: SamplingParams):
    if not p.grammar_lazy:
        return ll.llama_sampler_init_grammar(model.vocab, p.grammar.encode(), b"root")
    patterns = (ctypes.c_char_p * max(1, len(p.grammar_triggers)))(*[t.encode() for t in p.grammar_triggers])
    return ll.llama_sampler_init_grammar_lazy_patterns(
        model.vocab, p.grammar.encode(), b"root", patterns, len(p.grammar_triggers), None, 0)


class SamplerChain:
    def __init__(self, model, params: SamplingParams):
        self.model = model
        self.params = params
        self.n_vocab = model.n_vocab
        self.ptr = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        # The grammar stays out of the chain: filtering the whole vocabulary through it costs
        # milliseconds a step, so (as llama.cpp does) the chain picks a token first and the grammar
        # checks only that one; the vocabulary goes through the grammar only when it refuses.
        self.grammar = None
        self.argmax = False  # set by _build when the chain reduces to argmax (SamplingParams.is_greedy)
        self._keep = []  # ctypes buffers the C samplers point into
        try:
            self._build(model, params)
        except Exception:
            self.free()
            raise

    def _add(self, sampler) -> None:
        ll.llama_sampler_chain_add(self.ptr, sampler)

    def _build(self, model, p: SamplingParams) -> None:
        if p.grammar:
            check_grammar_length(p.grammar)
            self.grammar = _grammar_sampler(model, p)
            if not self.grammar:
                raise InvalidRequest("failed to parse grammar")
        biases = list(p.logit_bias)
        if p.ignore_eos:  # (the scheduler has added them to logit_bias already: once is enough)
            banned = {t for t, b in biases if b == -math.inf}
            biases += [(t, -math.inf) for t in model.eog_tokens if t not in banned]
        n_suppress = ctypes.c_int32(0)
        suppress = ll.llama_vocab_get_suppress_tokens(model.vocab, ctypes.byref(n_suppress))
        biases += [(suppress[i], -math.inf) for i in range(n_suppress.value)]
        if p.is_greedy and p.n_probs == 0:
            # argmax in numpy (~10 us) instead of the chain, which copies the whole vocabulary into
            # candidates and sorts it for top-k before keeping the best one (~100 us a token)
            self.argmax = True
            self._bias_ids = np.array([t for t, _ in biases], dtype=np.int64)
            self._bias_values = np.array([b for _, b in biases], dtype=np.float32)
            # with only penalties (ignore_eos, suppressed tokens) the raw argmax stands unless it is
            # one of the penalised tokens: no copy of the logits then
            self._penalised = frozenset(t for t, _ in biases) if all(b <= 0 for _, b in biases) else None
            self._add(ll.llama_sampler_init_greedy())  # for accept(); never asked to sample
            return
        if biases:
            arr = (ll.llama_logit_bias * len(biases))(*[ll.llama_logit_bias(t, b) for t, b in biases])
            self._keep.append(arr)
            self._add(ll.llama_sampler_init_logit_bias(self.n_vocab, len(biases), arr))

        if p.mirostat == 1:
            self._add(ll.llama_sampler_init_temp(p.temperature))
            self._add(ll.llama_sampler_init_mirostat(self.n_vocab, p.seed, p.mirostat_tau, p.mirostat_eta, 100))
            return
        if p.mirostat == 2:
            self._add(ll.llama_sampler_init_temp(p.temperature))
            self._add(ll.llama_sampler_init_mirostat_v2(p.seed, p.mirostat_tau, p.mirostat_eta))
            return

        for name in p.samplers:
            if name == "penalties":
                # libllama allocates a ring buffer of last_n tokens: never more than a slot can hold
                last_n = model.n_ctx_slot if p.repeat_last_n == -1 else min(p.repeat_last_n, model.n_ctx_slot)
                self._add(ll.llama_sampler_init_penalties(self.n_vocab, last_n, p.repeat_penalty, p.frequency_penalty, p.presence_penalty))
            elif name == "dry":
                breakers = [b.encode() for b in p.dry_sequence_breakers]
                c_breakers = (ctypes.c_char_p * max(1, len(breakers)))(*breakers)
                self._keep.append(c_breakers)
                last_n = model.n_ctx_slot if p.dry_penalty_last_n == -1 else min(p.dry_penalty_last_n, model.n_ctx_slot)
                self._add(ll.llama_sampler_init_dry(
                    model.vocab, p.dry_multiplier, p.dry_base, p.dry_allowed_length,
                    last_n, c_breakers, len(breakers)))
            elif name == "top_n_sigma":
                self._add(ll.llama_sampler_init_top_n_sigma(p.top_n_sigma))
            elif name == "top_k":
                self._add(ll.llama_sampler_init_top_k(p.top_k))
            elif name == "typ_p":
                self._add(ll.llama_sampler_init_typical(p.typical_p, p.min_keep))
            elif name == "top_p":
                self._add(ll.llama_sampler_init_top_p(p.top_p, p.min_keep))
            elif name == "min_p":
                self._add(ll.llama_sampler_init_min_p(p.min_p, p.min_keep))
            elif name == "xtc":
                self._add(ll.llama_sampler_init_xtc(p.xtc_probability, p.xtc_threshold, p.min_keep, p.seed))
            elif name == "temperature":
                self._add(ll.llama_sampler_init_temp_ext(p.temperature, p.dynatemp_range, p.dynatemp_exponent))
            elif name == "infill":
                self._add(ll.llama_sampler_init_infill(model.vocab))
            # "adaptive_p" selects the token, so llama.cpp puts it last, wherever it was named: below
        if p.temperature <= 0.0:
            # llama.cpp's temp sampler keeps only the max-logit token at temp <= 0; greedy picks it without a draw.
            self._add(ll.llama_sampler_init_greedy())
        elif "adaptive_p" in p.samplers:
            self._add(ll.llama_sampler_init_adaptive_p(p.adaptive_target, p.adaptive_decay, p.seed))
        else:
            self._add(ll.llama_sampler_init_dist(p.seed))

    def accept_prompt(self, tokens: list[int]) -> None:
        """Feed prompt tokens to stateful samplers (penalties, DRY) as llama-server does (not to the
        grammar, which constrains only what is generated)."""
        if self.params.is_greedy:
            return
        for t in tokens:
            ll.llama_sampler_accept(self.ptr, t)

    def sample(self, ctx, idx: int) -> tuple[int, TokenProb | None]:
        """Sample the token at batch index `idx` (and accept it into the chain)."""
        p = self.params
        if self.argmax:
            logits = self._logits(ctx, idx)
            if len(self._bias_ids):
                if self._penalised is not None:
                    token = int(logits.argmax())
                    if token not in self._penalised:
                        return token, None
                logits = logits.copy()
                np.add.at(logits, self._bias_ids, self._bias_values)
            return int(logits.argmax()), None
        if self.grammar is None and not (p.n_probs > 0 and p.post_sampling_probs):
            if p.n_probs <= 0:
                return ll.llama_sampler_sample(self.ptr, ctx, idx), None
            logits = self._logits(ctx, idx)
            token = ll.llama_sampler_sample(self.ptr, ctx, idx)
            return token, self._pre_sampling_prob(token, logits)
        # The candidates are applied and the choice checked before it is accepted: libllama throws
        # a C++ exception (which aborts the process through ctypes) when the grammar is handed a
        # token it does not allow, which happens when it allows none.
        logits = self._logits(ctx, idx)
        # post-sampling probabilities must be those of the constrained candidates: grammar first
        exact = self.grammar is not None and p.n_probs > 0 and p.post_sampling_probs
        kept, selected = self._apply(logits, grammar_first=exact)
        if self.grammar is not None and not exact and not self._grammar_allows(int(kept["id"][selected])):
            kept, selected = self._apply(logits, grammar_first=True)
        token = int(kept["id"][selected])
        if self.grammar is not None:
            ll.llama_sampler_accept(self.grammar, token)
        ll.llama_sampler_accept(self.ptr, token)
        if p.n_probs <= 0:
            return token, None
        if not p.post_sampling_probs:
            return token, self._pre_sampling_prob(token, logits)
        finite = np.isfinite(kept["logit"])
        probs = np.zeros(len(kept), dtype=np.float64)
        if finite.any():
            z = kept["logit"][finite].astype(np.float64)
            e = np.exp(z - z.max())
            probs[finite] = e / e.sum()
        order = np.argsort(-probs, kind="stable")[: p.n_probs]
        return token, self._prob(token, float(probs[selected]), kept["id"][order], probs[order])

    def _apply(self, logits: np.ndarray, grammar_first: bool) -> tuple[np.ndarray, int]:
        """The chain (after the grammar, if asked) over all candidates: (candidates kept, index chosen)."""
        data = np.empty(self.n_vocab, dtype=_TOKEN_DATA)
        data["id"] = np.arange(self.n_vocab, dtype=np.int32)
        data["logit"] = logits
        data["p"] = 0.0
        cur = ll.llama_token_data_array(data.ctypes.data_as(ll.llama_token_data_p), self.n_vocab, -1, False)
        if grammar_first:
            ll.llama_sampler_apply(self.grammar, ctypes.byref(cur))
        ll.llama_sampler_apply(self.ptr, ctypes.byref(cur))
        kept = data[: cur.size]
        selected = cur.selected
        if not 0 <= selected < len(kept) or not np.isfinite(kept["logit"][selected]):
            raise NoTokenAllowed("the grammar (with the sampling settings) allows no further token")
        return kept, selected

    def _grammar_allows(self, token: int) -> bool:
        one = np.zeros(1, dtype=_TOKEN_DATA)
        one["id"] = token
        cur = ll.llama_token_data_array(one.ctypes.data_as(ll.llama_token_data_p), 1, -1, False)
        ll.llama_sampler_apply(self.grammar, ctypes.byref(cur))
        return bool(np.isfinite(one["logit"][0]))

    def force(self, ctx, idx: int, token: int) -> tuple[bool, TokenProb | None]:
        """Emit `token` instead of sampling (a reasoning budget closing the thoughts) and accept it,
        unless the grammar refuses it: then (False, None) and nothing changed."""
        if self.grammar is not None:
            if not self._grammar_allows(token):
                return False, None
            ll.llama_sampler_accept(self.grammar, token)
        ll.llama_sampler_accept(self.ptr, token)
        if self.params.n_probs <= 0:
            return True, None
        return True, self._pre_sampling_prob(token, self._logits(ctx, idx))

    def _logits(self, ctx, idx: int) -> np.ndarray:
        return np.ctypeslib.as_array(ll.llama_get_logits_ith(ctx, idx), shape=(self.n_vocab,))

    def _pre_sampling_prob(self, token: int, logits: np.ndarray) -> TokenProb:
        lse = _logsumexp(logits)
        n = min(self.params.n_probs, self.n_vocab)
        top = np.argpartition(-logits, n - 1)[:n]
        top = top[np.argsort(-logits[top], kind="stable")]
        return self._prob(token, float(logits[token] - lse), top, logits[top] - lse)

    def _prob(self, token: int, value: float, ids, values) -> TokenProb:
        piece = self.model.piece
        return TokenProb(token, piece(token), value, [(int(i), piece(int(i)), float(v)) for i, v in zip(ids, values)])

    def free(self) -> None:
        if self.ptr:
            ll.llama_sampler_free(self.ptr)
            self.ptr = None
        if self.grammar:
            ll.llama_sampler_free(self.grammar)
            self.grammar = None


def _logsumexp(x: np.ndarray) -> float:
    m = float(x.max())
    return m + math.log(float(np.exp(x - m, dtype=np.float64).sum()))
