"""Embedding tasks through the scheduler with the real MiniLM model: batching, reference vectors, refusals,
and context sizes that libllama would otherwise abort on."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from llamaserve.engine import COMPLETION, EMBEDDING, RERANK, Task
from llamaserve.errors import InvalidRequest, NotSupported
from tests.conftest import MODEL, reference_numbers, shared_model
from tests.helpers import cosine, run_tasks as run, running_scheduler


@pytest.fixture(scope="module")
def minilm():
    return shared_model("all-MiniLM-L6-v2.f16.gguf")


@pytest.fixture(scope="module")
def reference():
    return reference_numbers("embedding")


@pytest.fixture(scope="module")
def engine(minilm):
    with running_scheduler(model=minilm, embedding=True, n_parallel=4, n_threads=2) as e:
        yield e


def test_inputs_share_one_decode_and_match_the_reference(engine, reference):
    sched, _ = engine
    steps, stats = sched.n_steps, dataclasses.replace(sched.stats)
    results = run(engine, [Task(ids, kind=EMBEDDING) for ids in reference["token_ids"]])
    assert sched.n_steps - steps == 1  # three sequences, one llama_decode
    # /metrics: embedding inputs are prompt tokens decoded (nothing is generated)
    assert sched.stats.prompt_tokens - stats.prompt_tokens == sum(len(t) for t in reference["token_ids"])
    assert (sched.stats.n_decode - stats.n_decode, sched.stats.predicted_tokens) == (1, 0)
    for r, ref in zip(results, reference["vectors"]):
        assert r.error is None and len(r.embedding) == 1 and r.n_prompt == len(r.task.prompt)
        assert cosine(r.embedding[0], ref) > 0.999
        assert np.linalg.norm(r.embedding[0]) == pytest.approx(1.0, abs=1e-5)


def test_more_inputs_than_slots_go_in_slot_sized_batches(engine, reference):
    sched, _ = engine
    ids = reference["token_ids"]
    alone = [run(engine, [Task(t, kind=EMBEDDING)])[0].embedding[0] for t in ids]
    steps = sched.n_steps
    tasks = [Task(ids[i % 3], kind=EMBEDDING, index=i) for i in range(9)]
    results = run(engine, tasks)
    assert sched.n_steps - steps == 3  # 4 + 4 + 1 inputs
    for i, r in enumerate(results):
        assert np.abs(np.asarray(r.embedding[0]) - alone[i % 3]).max() < 1e-4  # batching does not change a vector


def test_unnormalised_vector_has_the_reference_norm(engine, reference):
    r = run(engine, [Task(reference["token_ids"][0], kind=EMBEDDING, embd_normalize=-1)])[0]
    assert np.linalg.norm(r.embedding[0]) == pytest.approx(reference["unnormalized_l2_norm"][0], rel=1e-3)


def test_refusals(engine):
    sched, _ = engine
    too_long = Task([101] + [1996] * 600 + [102], kind=EMBEDDING)
    cases = [
        (Task([101, 102]), NotSupported, "embedding mode"),
        (Task([101, 102], kind=RERANK), NotSupported, "reranking"),
        (too_long, InvalidRequest, "too large"),
        (Task([], kind=EMBEDDING), InvalidRequest, "empty"),
    ]
    results = run(engine, [t for t, _, _ in cases])
    for r, (task, kind, fragment) in zip(results, cases):
        assert isinstance(r.error, kind) and fragment in r.error.message
        with pytest.raises(kind):
            sched.validate(task)  # the same answer, before submission
    assert cases[0][0].kind == COMPLETION
    # the engine still serves afterwards
    assert run(engine, [Task([101, 1996, 102], kind=EMBEDDING)])[0].error is None


def test_causal_model_batched_pooling_equals_alone():
    # A decoder (SmolLM2, with a KV cache) in embedding mode. With one KV stream per slot, libllama
    # would cut a batch of a 6- and a 2-token input into equal slices, so the longer input's mean
    # would cover its last slice only; embedding mode therefore unifies the cache. A fresh scheduler
    # gives the first task slot 0 and the second slot 1: the layout that used to split.
    with running_scheduler(model=MODEL, embedding=True, pooling="mean", n_parallel=2, n_ctx=1024, kv_unified=False,
                           n_threads=2) as engine:
        sched = engine[0]
        texts = ["The cat sits on the mat", "Hello world"]
        batched = run(engine, [Task(sched.model.tokenize(t), kind=EMBEDDING) for t in texts])
        assert [r.id_slot for r in batched] == [0, 1] and len(batched[0].task.prompt) > len(batched[1].task.prompt)
        for text, r in zip(texts, batched):
            alone = run(engine, [Task(sched.model.tokenize(text), kind=EMBEDDING)])[0]
            assert np.abs(np.asarray(alone.embedding[0]) - r.embedding[0]).max() < 1e-4


_CREATE = """
import sys
from llamaserve.config import Config
from llamaserve.engine.model import Model, ModelLoadError
path = sys.argv[1]
for n_seq, n_ctx, n_ubatch, unified in [(3, 0, 512, True), (3, 0, 512, False), (5, 300, 512, True), (7, 700, 100, False), (8, 0, 4, True)]:
    try:
        m = Model(Config(model=path, embedding=True, n_parallel=n_seq, n_ctx=n_ctx, n_ubatch=n_ubatch, kv_unified=unified, n_threads=1))
        print("ok", n_seq, m.n_ubatch, flush=True)
        m.close()
    except ModelLoadError as exc:
        print("refused", n_seq, exc, flush=True)
"""


def test_mean_pooling_slot_counts_never_abort(minilm):
    # With mean pooling, libllama aborts context creation unless its reserved ubatch is a multiple of the
    # number of sequences; the model picks a valid n_ubatch, or refuses with a message. A subprocess, so
    # that an abort fails this test instead of killing the run.
    proc = subprocess.run([sys.executable, "-c", _CREATE, minilm], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[:4] == ["ok 3 510", "ok 3 510", "ok 5 300", "ok 7 98"]
    assert lines[4].startswith("refused 8") and "-np" in lines[4]
