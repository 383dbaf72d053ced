"""The adaptive-p sampler (libllama's) in the chain: named among the samplers it picks the token in
place of the final draw, steering towards its target probability; not named, its fields do nothing."""

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
    m = Model(Config(model=MODEL, n_parallel=1, n_ctx=256, n_threads=2, n_batch=64))
    yield m
    m.close()


@pytest.fixture(scope="module")
def idx(model):
    tokens = model.tokenize("The capital of France is")
    ll.llama_memory_seq_rm(model.memory, 0, -1, -1)
    batch = Batch(64, 1)
    last = batch.add_span(np.array(tokens, dtype=np.int32), 0, 0, True)
    assert batch.decode(model.ctx) == 0
    return last


def pick(model, idx, **kw) -> int:
    chain = SamplerChain(model, SamplingParams(**kw))
    try:
        return chain.sample(model.ctx, idx)[0]
    finally:
        chain.free()


def test_named_adaptive_p_steers_towards_its_target(model, idx):
    best = pick(model, idx, temperature=0)
    common = dict(temperature=1.0, top_k=40, samplers=["top_k", "temperature", "adaptive_p"])
    # target 1: the likeliest token every time; target 0: steered away from it (to the rare ones)
    assert {pick(model, idx, adaptive_target=1.0, seed=s, **common) for s in range(8)} == {best}
    assert best not in {pick(model, idx, adaptive_target=0.0, seed=s, **common) for s in range(8)}


def test_adaptive_fields_without_the_sampler_change_nothing(model, idx):
    plain = [pick(model, idx, temperature=1.0, top_k=40, seed=s) for s in range(8)]
    targeted = [pick(model, idx, temperature=1.0, top_k=40, seed=s, adaptive_target=0.0) for s in range(8)]
    assert plain == targeted
