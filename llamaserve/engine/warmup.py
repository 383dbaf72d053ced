"""The start-up warmup: one small decode before the first request, then a clean context again.

The first graph computed pays for allocations, weight repacking and page faults of the mapped
model; llama-server takes that cost at start-up with a decode of the BOS and EOS tokens, and so
do we. Afterwards the KV memory and the perf counters are cleared, so no request sees a trace.
"""

from __future__ import annotations

import logging
import time

import llama_cpp.llama_cpp as ll

log = logging.getLogger("llamaserve.engine")


def warm_up(model, ctx, vocab, n_tokens_max: int) -> bool:
    """Decode BOS + EOS (whichever exist, else token 0) once; returns whether libllama accepted it.

    n_tokens_max is the most tokens one decode may hold: an embedding context must take its input
    in a single ubatch, so the warmup is cut to that size rather than made to fail there."""
    t0 = time.perf_counter()
    tokens = [t for t in (ll.llama_vocab_bos(vocab), ll.llama_vocab_eos(vocab)) if t != ll.LLAMA_TOKEN_NULL] or [0]
    ok = True
    if ll.llama_model_has_encoder(model):
        ok = _run(ll.llama_encode, ctx, tokens)
        start = ll.llama_model_decoder_start_token(model)
        tokens = [start if start != ll.LLAMA_TOKEN_NULL else tokens[0]]
    if ll.llama_model_has_decoder(model):
        tokens = tokens[:max(1, n_tokens_max)]
        ok = _run(ll.llama_decode, ctx, tokens) and ok
    memory = ll.llama_get_memory(ctx)
    if memory:
        ll.llama_memory_clear(memory, True)
    ll.llama_synchronize(ctx)
    ll.llama_perf_context_reset(ctx)
    if ok:
        log.info("warmup: decoded %d token(s) in %.0f ms, KV cache cleared (--no-warmup skips this)",
                 len(tokens), (time.perf_counter() - t0) * 1e3)
    else:
        log.warning("warmup: libllama refused the warmup decode; starting without it")
    return ok


def _run(fn, ctx, tokens: list[int]) -> bool:
    arr = (ll.llama_token * len(tokens))(*tokens)
    return fn(ctx, ll.llama_batch_get_one(arr, len(tokens))) == 0
