"""Speculative decoding with the real model, no HTTP: drafts verified in the shared batch give the
output the model gives without them, rejected drafts leave no KV cells, and stop strings, n_predict,
grammars, n_probs, context shift, concurrency and cancellation behave as without drafts.

One engine serves every case: SmolLM2 is its own draft model (-md), and each task picks its draft
types (SpecParams), so "without drafts" is the same engine, the same slots, the same batch sizes.
"""

from __future__ import annotations

import dataclasses
import time

import llama_cpp.llama_cpp as ll
import pytest

from llamaserve.config import SpeculativeConfig
from llamaserve.engine import SamplingParams, SpecParams, Task
from tests.conftest import MODEL
from tests.helpers import run_tasks as run, running_scheduler

PASSAGE = (
    "def add(a, b):\n    return a + b\n\n"
    "def sub(a, b):\n    return a - b\n\n"
    "def mul(a, b):\n    return a * b\n\n"
    "def div(a, b):\n    return a / b\n\n"
)
REPEAT = "<|im_start|>user\nRepeat this code exactly:\n" + PASSAGE + "<|im_end|>\n<|im_start|>assistant\n"
STORY = "<|im_start|>user\nWrite a short story about a lighthouse keeper.<|im_end|>\n<|im_start|>assistant\n"

PLAIN = SpecParams()
NGRAM = SpecParams(types=("ngram-simple",), ngram_size_n=3, ngram_size_m=8)
DRAFT = SpecParams(types=("draft-simple",), n_max=6)


@pytest.fixture(scope="module")
def engine():
    spec = SpeculativeConfig(draft_model=MODEL, types=["ngram-simple", "draft-simple"])
    with running_scheduler(model=MODEL, n_threads=2, n_batch=64, n_parallel=2, n_ctx=2048, spec=spec) as e:
        yield e


def task(sched, text, spec, n=48, params=None, **kw):
    return Task(sched.model.tokenize(text), params or SamplingParams(temperature=0), n_predict=n, spec=spec,
                cache_prompt=False, **kw)


def kv_cells(sched) -> list[tuple[int, int]]:
    """Per slot: (positions its KV sequence holds, tokens the slot says it holds), read on the scheduler thread."""
    def read():
        mem = sched.model.memory
        return [(ll.llama_memory_seq_pos_max(mem, s.id) + 1, s.n_past) for s in sched.slots]
    return sched.call(read).result(30)


def test_the_model_as_its_own_draft_is_accepted_almost_always(engine):
    sched, _ = engine
    plain, drafted = run(engine, [task(sched, STORY, PLAIN)])[0], run(engine, [task(sched, STORY, DRAFT)])[0]
    assert drafted.text == plain.text
    t = drafted.timings
    assert t.draft_n >= 30 and t.draft_n_accepted >= 0.9 * t.draft_n
    assert plain.timings.draft_n == 0 and "draft_n" not in plain.timings.as_dict()


def test_ngram_drafts_repeat_the_passage_and_change_nothing(engine):
    sched, _ = engine
    plain, drafted = run(engine, [task(sched, REPEAT, PLAIN, n=60)])[0], run(engine, [task(sched, REPEAT, NGRAM, n=60)])[0]
    assert PASSAGE[:40] in plain.text  # the model does repeat it: the drafts have something to predict
    assert drafted.text == plain.text and drafted.tokens == plain.tokens
    t = drafted.timings
    assert t.draft_n_accepted >= 20 and t.draft_n_accepted <= t.draft_n
    assert (drafted.n_decoded, drafted.stop_type) == (plain.n_decoded, plain.stop_type)


def test_rejected_drafts_leave_no_kv_cells(engine):
    sched, _ = engine
    # n-gram drafts on a story are mostly wrong: rejections happen, and after each task (and while one
    # runs) the slot's sequence holds exactly its tokens
    r = run(engine, [task(sched, STORY + "The keeper said: the sea, the sea, the sea. ", NGRAM, n=64)])[0]
    assert r.timings.draft_n > r.timings.draft_n_accepted
    assert all(held == n_past for held, n_past in kv_cells(sched))
    r = run(engine, [task(sched, REPEAT, dataclasses.replace(NGRAM, ngram_size_n=1), n=64)])[0]
    assert r.timings.draft_n > r.timings.draft_n_accepted
    assert all(held == n_past for held, n_past in kv_cells(sched))


def test_stop_strings_and_n_predict_end_where_they_end_without_drafts(engine):
    sched, _ = engine
    for spec in (PLAIN, NGRAM, DRAFT):
        stopped = run(engine, [task(sched, REPEAT, spec, n=80, stop=["mul"])])[0]
        limited = run(engine, [task(sched, REPEAT, spec, n=7)])[0]
        assert (stopped.stop_type, stopped.stopping_word) == ("word", "mul")
        assert (limited.stop_type, limited.n_decoded, len(limited.tokens)) == ("limit", 7, 7)
        if spec is PLAIN:
            expected = (stopped.text, limited.text)
        assert (stopped.text, limited.text) == expected
    assert all(held == n_past for held, n_past in kv_cells(sched))


def test_grammar_and_n_probs_are_unchanged(engine):
    sched, _ = engine
    grammar = 'root ::= "def " [a-z]+ "(a, b):\\n    return a " [-+*/] " b\\n" ([a-z \\n(),:+*/-]*)'
    params = SamplingParams(temperature=0, grammar=grammar, n_probs=3)
    out = [run(engine, [task(sched, REPEAT, spec, n=40, params=params)])[0] for spec in (PLAIN, NGRAM, DRAFT)]
    assert out[0].text.startswith("def ")
    assert [r.text for r in out[1:]] == [out[0].text] * 2
    assert [[(p.id, [i for i, _, _ in p.top]) for p in r.probs] for r in out[1:]] == \
        [[(p.id, [i for i, _, _ in p.top]) for p in out[0].probs]] * 2
    assert out[1].timings.draft_n_accepted > 0


def test_sampled_output_with_a_seed_is_the_same_with_and_without_drafts(engine):
    # drafts are kept only while the chain samples them: with one seed, the same tokens come out
    sched, _ = engine
    params = SamplingParams(temperature=0.7, seed=1234, top_k=20)
    texts = [run(engine, [task(sched, REPEAT, spec, n=40, params=params)])[0].text for spec in (PLAIN, NGRAM, DRAFT)]
    assert texts[1:] == [texts[0]] * 2


def test_concurrent_drafting_slots_batch_together(engine):
    sched, _ = engine
    alone = [run(engine, [task(sched, text, spec)])[0].text for text, spec in ((REPEAT, NGRAM), (STORY, DRAFT))]
    steps = sched.n_steps
    both = run(engine, [task(sched, REPEAT, NGRAM), task(sched, STORY, DRAFT)])
    assert [r.text for r in both] == alone
    assert all(r.timings.draft_n_accepted > 0 for r in both)
    assert sched.n_steps - steps < 48  # several tokens per step for both
    assert all(held == n_past for held, n_past in kv_cells(sched))


def test_context_shift_with_drafts():
    spec = SpeculativeConfig(types=["ngram-simple"], ngram_simple_size_n=2, ngram_simple_size_m=8)
    with running_scheduler(model=MODEL, n_threads=2, n_batch=64, n_parallel=1, n_ctx=256, ctx_shift=True, spec=spec) as e:
        sched, _ = e
        prompt = sched.model.tokenize("Hello " * 120)
        r = run(e, [Task(prompt, SamplingParams(temperature=0, ignore_eos=True), n_predict=256, cache_prompt=False)])[0]
        assert (r.n_decoded, r.stop_type, r.truncated, r.error) == (256, "limit", True, None)
        assert r.timings.draft_n_accepted > 0
        assert all(held == n_past for held, n_past in kv_cells(sched))


def test_cancelling_a_drafting_stream_frees_its_slot(engine):
    sched, results = engine
    t = task(sched, REPEAT, NGRAM, n=100000, params=SamplingParams(temperature=0, ignore_eos=True), stream=True)
    sched.submit([t])
    assert results.get(timeout=30).task is t
    t.cancel()
    deadline = time.time() + 10
    while any(s.busy for s in sched.slots) and time.time() < deadline:
        time.sleep(0.01)
    assert not any(s.busy for s in sched.slots)
    while not results.empty():
        results.get()
    assert all(held == n_past for held, n_past in kv_cells(sched))


def test_a_request_for_a_type_the_server_cannot_run_is_refused(engine):
    sched, _ = engine
    r = run(engine, [task(sched, STORY, SpecParams(types=("ngram-cache",)))])[0]
    assert r.error is not None and "not built" in str(r.error)


def start_up_error(spec: SpeculativeConfig) -> str:
    from llamaserve.config import Config
    from llamaserve.engine import Scheduler

    sched = Scheduler(Config(model=MODEL, n_threads=2, n_ctx=512, n_parallel=1, spec=spec), lambda results: None)
    sched.start()
    try:
        assert sched.ready.wait(60)
        return str(sched.load_error)
    finally:
        sched.stop()


def test_start_up_refuses_a_draft_model_of_another_vocabulary_and_draft_heads():
    from tests.conftest import shared_model

    assert "cannot draft for this model: the vocabulary types differ" in start_up_error(
        SpeculativeConfig(draft_model=shared_model("all-MiniLM-L6-v2.f16.gguf")))
    assert "does not run" in start_up_error(SpeculativeConfig(types=["draft-mtp"]))
    assert "needs a draft model" in start_up_error(SpeculativeConfig(types=["draft-simple"]))
    assert "--spec-synth-rates needs 6 values" in start_up_error(
        SpeculativeConfig(draft_model=MODEL, draft_n_max=6, synth_rates=[0.5]))


def test_synthetic_acceptance_keeps_drafts_by_draw_alone():
    spec = SpeculativeConfig(draft_model=MODEL, draft_n_max=4, synth_rates=[0.0] * 4)
    with running_scheduler(model=MODEL, n_threads=2, n_batch=64, n_parallel=1, n_ctx=1024, spec=spec) as e:
        sched, _ = e
        none = run(e, [task(sched, STORY, None, n=24)])[0]
        plain = run(e, [task(sched, STORY, PLAIN, n=24)])[0]
        # rates of 0: every draft is rejected, the output is the model's own
        assert none.tokens == plain.tokens and none.timings.draft_n > 0 and none.timings.draft_n_accepted == 0
    spec = dataclasses.replace(spec, synth_rates=[1.0] * 4)
    with running_scheduler(model=MODEL, n_threads=2, n_batch=64, n_parallel=1, n_ctx=1024, spec=spec) as e:
        sched, _ = e
        r = run(e, [task(sched, STORY, None, n=24, params=SamplingParams(temperature=0, ignore_eos=True))])[0]
        assert r.timings.draft_n_accepted == r.timings.draft_n > 0 and r.n_decoded == 24
