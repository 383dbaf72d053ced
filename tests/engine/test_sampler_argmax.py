"""Greedy sampling takes an argmax over the biased logits instead of the sampler chain: it must pick
exactly what the chain picks, with every logit bias (ignore_eos, logit_bias) applied."""

from __future__ import annotations

import numpy as np
import pytest

import llama_cpp.llama_cpp as ll
from llamaserve.config import Config
from llamaserve.engine.batch import Batch
from llamaserve.engine.model import Model
from llamaserve.engine.sampler import SamplerChain
from llamaserve.engine.types import SamplingParams
from tests.conftest import MODEL


@pytest.fixture(scope="module")
def model():
    m = Model(Config(model=MODEL, n_parallel=1, n_ctx=512, n_threads=2, n_batch=64))
    yield m
    m.close()


def decoded(model, text):
    tokens = model.tokenize(text)
    ll.llama_memory_seq_rm(model.memory, 0, -1, -1)
    batch = Batch(64, 1)
    last = batch.add_span(np.array(tokens, dtype=np.int32), 0, 0, True)
    assert batch.decode(model.ctx) == 0
    return last


def pick(model, idx, **kw):
    chain = SamplerChain(model, SamplingParams(**kw))
    try:
        return chain.argmax, chain.sample(model.ctx, idx)[0]
    finally:
        chain.free()


@pytest.mark.parametrize("kw", [
    {},
    {"ignore_eos": True},
    {"top_k": 1, "top_p": 0.5, "min_p": 0.2},
])
def test_argmax_picks_what_the_chain_picks(model, kw):
    idx = decoded(model, "The capital of France is")
    fast, token = pick(model, idx, temperature=0, **kw)
    # n_probs makes the chain run (the probabilities come from it); the choice must not differ
    slow, chained = pick(model, idx, temperature=0, n_probs=1, **kw)
    assert fast and not slow
    assert token == chained


def test_argmax_applies_logit_biases(model):
    idx = decoded(model, "The capital of France is")
    _, best = pick(model, idx, temperature=0)
    _, other = pick(model, idx, temperature=0, logit_bias=[(best, -1e9)])
    _, forced = pick(model, idx, temperature=0, logit_bias=[(42, 1e9)])
    assert other != best and forced == 42
    # the same token twice: both biases count, as libllama's logit-bias sampler adds each
    _, twice = pick(model, idx, temperature=0, logit_bias=[(42, 5e8), (42, 5e8)])
    assert twice == 42


def test_eos_is_never_picked_with_ignore_eos(model):
    idx = decoded(model, "Hello")
    eos = model.eog_tokens[0]
    _, free = pick(model, idx, temperature=0, logit_bias=[(eos, 1e9)])
    _, held = pick(model, idx, temperature=0, logit_bias=[(eos, 1e9)], ignore_eos=True)
    assert free == eos and held not in model.eog_tokens


@pytest.mark.parametrize("kw", [{"repeat_penalty": 1.1}, {"dry_multiplier": 0.8}, {"typical_p": 0.5},
                                {"xtc_probability": 0.5}, {"mirostat": 2}, {"temperature": 0.7}])
def test_stateful_or_dropping_samplers_keep_the_chain(model, kw):
    assert not pick(model, decoded(model, "Hello"), **({"temperature": 0} | kw))[0]
