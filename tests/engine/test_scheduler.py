"""The scheduler with the real model, no HTTP: batching, cancellation, deferral, decode-failure handling."""

from __future__ import annotations

import time

import pytest

from llamaserve.engine import SamplingParams, Task
from tests.conftest import MODEL
from tests.helpers import run_tasks as run, running_scheduler


def own_engine(**config):
    """A started scheduler on the bundled model (2 threads, n_batch 64, and `config`) and its results queue."""
    return running_scheduler(model=MODEL, n_threads=2, n_batch=64, **config)


@pytest.fixture(scope="module")
def engine():
    with own_engine(n_parallel=2, n_ctx=2048) as e:
        yield e


def greedy(sched, text, n=16, **kw):
    return Task(sched.model.tokenize(text), SamplingParams(temperature=0), n_predict=n, **kw)


def test_batched_equals_alone(engine):
    sched, _ = engine
    texts = ["The sky is", "My favourite food is", "In 1492,", "Water boils at", "The best way to learn is"]
    alone = [run(engine, [greedy(sched, t, cache_prompt=False)])[0].text for t in texts]
    together = [r.text for r in run(engine, [greedy(sched, t, cache_prompt=False) for t in texts])]
    assert together == alone


def test_chunked_prefill_matches_single_batch(engine):
    # n_batch is 64, so a 300-token prompt is fed in chunks while another slot generates
    sched, _ = engine
    long_text = "Some facts about the ocean. " * 50
    alone = run(engine, [greedy(sched, long_text, cache_prompt=False)])[0]
    assert alone.n_prompt > 64 * 3
    short = greedy(sched, "Hello there", n=40, cache_prompt=False)
    both = run(engine, [short, greedy(sched, long_text, cache_prompt=False)])
    assert both[1].text == alone.text


def test_deferred_tasks_wait_for_a_slot(engine):
    sched, _ = engine
    tasks = [Task(sched.model.tokenize(f"Number {i} is"), SamplingParams(temperature=0, ignore_eos=True), n_predict=6) for i in range(5)]
    results = run(engine, tasks)  # 5 tasks, 2 slots
    assert [(r.n_decoded, r.stop_type, r.error) for r in results] == [(6, "limit", None)] * 5


def test_cancel_frees_the_slot_within_a_step(engine):
    sched, results = engine
    task = Task(sched.model.tokenize("Once upon a time"), SamplingParams(temperature=0, ignore_eos=True), n_predict=100000, stream=True)
    sched.submit([task])
    first = results.get(timeout=30)
    assert first.task is task and not first.done
    steps = sched.n_steps
    task.cancel()
    deadline = time.time() + 5
    while any(s.busy for s in sched.slots) and time.time() < deadline:
        time.sleep(0.005)
    assert not any(s.busy for s in sched.slots)
    assert sched.n_steps - steps <= 3
    while not results.empty():
        results.get()


def test_t_max_predict_ms(engine):
    sched, _ = engine
    task = Task(sched.model.tokenize("List of numbers:\n1\n2\n"), SamplingParams(temperature=0, ignore_eos=True), n_predict=5000, t_max_predict_ms=50)
    r = run(engine, [task])[0]
    assert r.stop_type == "limit" and r.n_decoded < 5000


def test_stream_results_carry_text_deltas(engine):
    sched, results = engine
    task = greedy(sched, "The capital of France is", n=12, stream=True)
    sched.submit([task])
    parts = []
    while True:
        r = results.get(timeout=30)
        parts.append(r.text)
        if r.done:
            break
    whole = run(engine, [greedy(sched, "The capital of France is", n=12)])[0].text
    assert "".join(parts) == whole


def test_call_runs_on_the_scheduler_thread_between_steps(engine):
    import threading

    from llamaserve.engine.scheduler import DEFER

    sched, results = engine
    assert sched.call(lambda: threading.current_thread().name).result(10) == "llamaserve-scheduler"
    with pytest.raises(ZeroDivisionError):
        sched.call(lambda: 1 / 0).result(10)
    # DEFER: asked again after each step until it answers, here until the slot's task has ended
    task = Task(sched.model.tokenize("Counting:"), SamplingParams(temperature=0, ignore_eos=True), n_predict=64, id_slot=0)
    sched.submit([task])
    while not sched.slots[0].busy:
        time.sleep(0.001)
    seen = []

    def when_idle():
        seen.append(sched.slots[0].n_decoded)
        return DEFER if sched.slots[0].busy else len(sched.slots[0].cache)

    n_cached = sched.call(when_idle).result(30)
    final = next(r for r in iter(lambda: results.get(timeout=30), None) if r.done and r.task is task)
    assert n_cached == final.n_cached and len(seen) > 1


@pytest.mark.parametrize("unified", [False, True], ids=["kv-per-slot", "kv-unified"])
def test_choices_of_one_prompt_evaluate_it_once(unified):
    """The n choices of one prompt (one prompt_group): the first evaluates the prompt, the others copy
    its KV cache and decode only its last token, and each choice samples exactly what it would alone."""
    with own_engine(n_parallel=3, n_ctx=3072, kv_unified=unified) as (sched, results):
        prompt = sched.model.tokenize("A short history of the bicycle, from the draisine to the safety bicycle. " * 6)
        assert len(prompt) > 64  # evaluated over several steps: the siblings wait for it

        def task(seed, group=None):
            return Task(prompt, SamplingParams(temperature=1.0, seed=seed), n_predict=12, cache_prompt=False, prompt_group=group)

        alone = [run((sched, results), [task(seed)])[0] for seed in (1, 2, 3)]
        group = object()
        together = run((sched, results), [task(seed, group) for seed in (1, 2, 3)])
        assert [r.text for r in together] == [r.text for r in alone]
        assert len({r.text for r in together}) > 1
        assert sorted(r.timings.prompt_n for r in together) == [1, 1, len(prompt)]
        assert all(r.timings.prompt_n == len(prompt) for r in alone)


def test_prompt_chunk_bounds_steps_while_others_run():
    """--prompt-chunk 16: while other requests are in flight a step holds at most 16 prompt tokens,
    prompts go in arrival order (so first tokens come in that order), and a prompt alone still
    takes whole n_batch steps. The texts are those of each request alone."""
    with own_engine(n_parallel=3, n_ctx=3072, prompt_chunk=16) as (sched, results):
        steps: list[int] = []
        decode = sched.batch.decode
        sched.batch.decode = lambda ctx: steps.append(sched.batch.n) or decode(ctx)
        texts = [f"Request {i}: a list of rivers, lakes and seas of the world, with their lengths, in a table." for i in range(3)]

        def task(text):
            return Task(sched.model.tokenize(text), SamplingParams(temperature=0, ignore_eos=True), n_predict=8,
                        cache_prompt=False, stream=True)

        alone = [run((sched, results), [task(t)])[0] for t in texts]
        assert all(r.n_prompt > 16 for r in alone)
        long = task("Some facts about the ocean. " * 20)
        steps.clear()
        run((sched, results), [long])
        assert steps[0] == 64  # alone: whole n_batch steps

        steps.clear()
        tasks = [task(t) for t in texts]
        sched.submit(tasks)
        firsts, finals = [], {}
        while len(finals) < 3:
            r = results.get(timeout=60)
            if r.task.id not in firsts:
                firsts.append(r.task.id)
            if r.done:
                finals[r.task.id] = r
        assert firsts == [t.id for t in tasks]
        assert max(steps) <= 16 + 2  # 16 prompt tokens and the other two slots' next tokens
        assert [finals[t.id].text for t in tasks] == [r.text for r in alone]


def test_a_full_shared_cache_fails_the_largest_request_and_the_others_finish():
    """--kv-unified with 256 cells for three requests that want 100 tokens each: when not even one
    token per slot fits, the request holding the most cells fails with "context size has been
    exceeded" (llama-server fails them all), and the others generate all they asked for. Idle slots'
    cached prompts are dropped before that (the first "alone" runs leave them behind)."""
    with own_engine(n_parallel=3, n_ctx=256, kv_unified=True) as (sched, results):

        def task(text, n):
            return Task(sched.model.tokenize(text), SamplingParams(temperature=0, ignore_eos=True), n_predict=n, cache_prompt=False)

        texts = ["Once upon a time", "The history of Rome", "A recipe for bread"]
        alone = [run((sched, results), [task(t, 100)])[0] for t in texts]
        assert all(r.error is None and r.n_decoded == 100 for r in alone), [(r.error, r.n_decoded) for r in alone]
        together = run((sched, results), [task(t, 100) for t in texts])
        failed = [r for r in together if r.error is not None]
        assert len(failed) == 1 and "context size has been exceeded" in str(failed[0].error)
        # (not the texts of each alone: in one shared cache the cells' layout changes the sums' order)
        assert [r.n_decoded for r in together if r.error is None] == [100, 100]
        again = run((sched, results), [task(t, 100) for t in texts[:2]])  # nothing is left behind
        assert [r.error for r in again] == [None, None] and [r.n_decoded for r in again] == [100, 100]
