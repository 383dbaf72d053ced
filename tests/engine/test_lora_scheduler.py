"""LoRA adapters in the scheduler, with the real model and the test adapter (shared/models): every
llama_decode holds slots of one adapter setting, settings take turns, and a slot's cache is not
reused under other scales."""

from __future__ import annotations

import itertools
import queue

import pytest

from llamaserve.config import LoraSpec
from llamaserve.engine import SamplingParams, Scheduler, Task
from llamaserve.errors import InvalidRequest
from tests.conftest import MODEL, shared_model
from tests.helpers import run_tasks, start_scheduler

PROMPT = "The capital of France is"


def _start(**config) -> tuple[Scheduler, queue.Queue]:
    return start_scheduler(model=MODEL, n_ctx=1536, n_threads=1, n_batch=64, **config)


@pytest.fixture(scope="module")
def engine():
    sched, results = _start(n_parallel=3, lora=[LoraSpec(shared_model("smollm2-135m-test-lora.f32.gguf"))])
    decodes: list[tuple[set[int], tuple, int, list[str]]] = []  # (slots in the batch, applied scales, settings active, faults)
    seq_of = {int(p): i for i, p in enumerate(sched.batch._seq_ptrs)}
    original = sched.batch.decode

    def recording_decode(ctx):
        # runs on the scheduler thread, just before llama_decode: the slots in this batch and the
        # scales the context holds must agree
        batch = sched.batch
        seqs = {seq_of[int(p)] for p in batch.seq_id[: batch.n]}
        applied = sched.model.lora._applied
        active = {s.lora for s in sched.slots if s.task is not None}
        faults = [f"slot {i} runs with {sched.slots[i].lora}, context has {applied}" for i in seqs if sched.slots[i].lora != applied]
        decodes.append((seqs, applied, len(active), faults))
        return original(ctx)

    sched.batch.decode = recording_decode
    yield sched, results, decodes
    sched.stop()


@pytest.fixture(scope="module")
def base_engine():
    sched, results = _start(n_parallel=1)
    yield sched, results
    sched.stop()


def run(sched, results, tasks):
    return run_tasks((sched, results), tasks, timeout=120)


def greedy(sched, text=PROMPT, n=12, lora=None, **kw) -> Task:
    return Task(sched.model.tokenize(text), SamplingParams(temperature=0), n_predict=n, lora=lora, **kw)


def one(engine, **kw):
    sched, results, _ = engine
    r = run(sched, results, [greedy(sched, **kw)])[0]
    assert r.error is None, r.error
    return r


def test_scale_one_changes_the_output_and_scale_zero_is_the_base_model(engine, base_engine):
    sched, results = base_engine
    base = run(sched, results, [greedy(sched)])[0].text
    on = one(engine, lora={0: 1.0}, cache_prompt=False)
    off = one(engine, lora={0: 0.0}, cache_prompt=False)
    assert on.text != base
    assert off.text == base
    assert on.task.lora_scales == (1.0,) and off.task.lora_scales == (0.0,)


def test_requests_without_lora_use_the_server_scales(engine):
    sched, _, _ = engine
    assert sched.lora_scales == (1.0,)  # --lora: scale 1
    on = one(engine, lora={0: 1.0}, cache_prompt=False).text
    off = one(engine, lora={0: 0.0}, cache_prompt=False).text
    assert one(engine, cache_prompt=False).text == on
    sched.set_lora_scales({})  # adapters not listed get 0
    try:
        assert sched.lora_scales == (0.0,)
        assert one(engine, cache_prompt=False).text == off
        assert one(engine, lora={0: 1.0}, cache_prompt=False).text == on  # a request's own scales win
    finally:
        sched.set_lora_scales({0: 1.0})


def test_each_decode_holds_one_setting_and_settings_take_turns(engine):
    sched, results, decodes = engine
    texts = ["The capital of France is", "My favourite food is", "Water boils at"]
    scales = [1.0, 0.0, 0.5]
    alone = [one(engine, text=t, lora={0: s}, n=10, cache_prompt=False).text for t, s in zip(texts, scales)]
    assert len(set(alone[:2])) == 2
    del decodes[:]
    together = run(sched, results, [greedy(sched, t, n=10, lora={0: s}, cache_prompt=False) for t, s in zip(texts, scales)])
    assert [r.text for r in together] == alone
    assert [f for *_, faults in decodes for f in faults] == []
    # all three were admitted in one step, so the settings alternated: no decode repeats the
    # setting of the one before while other settings wait
    mixed = [(applied, active) for _, applied, active, _ in decodes if active > 1]
    assert len(mixed) >= 25
    assert all(a[0] != b[0] for a, b in itertools.pairwise(mixed) if b[1] > 1 and a[1] == b[1])
    assert {applied for applied, _ in mixed} == {(1.0,), (0.0,), (0.5,)}


def test_one_setting_needs_no_extra_decodes(engine):
    sched, results, decodes = engine
    del decodes[:]
    tasks = [greedy(sched, t, n=8, lora={0: 0.25}, cache_prompt=False) for t in ("One", "Two", "Three")]
    run(sched, results, tasks)
    # every token step decodes all three slots together
    assert max(len(seqs) for seqs, *_ in decodes) == 3
    assert len(decodes) <= 8 + 1


def test_the_cache_is_not_reused_under_other_scales(engine):
    text = "A cache keyed by adapter scales: the weather today is"  # in no other test: no other cache holds it
    first = one(engine, text=text, lora={0: 0.0}, id_slot=0)
    again = one(engine, text=text, lora={0: 0.0}, id_slot=0)
    assert again.timings.cache_n == again.n_prompt - 1  # same scales: the prompt comes from the cache
    other = one(engine, text=text, lora={0: 1.0}, id_slot=0)
    assert other.timings.cache_n == 0 and other.timings.prompt_n == other.n_prompt
    assert other.text == one(engine, text=text, lora={0: 1.0}, cache_prompt=False).text != first.text
    # slot 0 now holds the 1.0 state; the 0.0 one was saved to the host prompt cache under its scales
    # when `other` took the slot, and comes back from there (never the 1.0 one)
    back = one(engine, text=text, lora={0: 0.0}, id_slot=0)
    assert back.timings.cache_n == back.n_prompt - 1 and back.text == first.text
    assert engine[0].stats.prompt_tokens_restored >= back.n_prompt - 1


def test_unknown_adapter_ids_are_refused(engine, base_engine):
    sched, _, _ = engine
    with pytest.raises(InvalidRequest, match="unknown adapter id 1"):
        sched.validate(greedy(sched, lora={1: 1.0}))
    with pytest.raises(InvalidRequest, match="unknown adapter id 3"):
        sched.set_lora_scales({3: 1.0})
    base, _ = base_engine
    with pytest.raises(InvalidRequest, match="no LoRA adapters are loaded"):
        base.validate(greedy(base, lora={0: 1.0}))
