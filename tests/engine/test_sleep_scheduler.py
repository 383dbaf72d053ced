"""The scheduler's sleep on idle with the real model, no HTTP: what wakes it (tasks, calls, holds), what does
not (a call with wakes=False, a hold's release), and that a hold keeps it awake however long it lasts."""

from __future__ import annotations

import time

from llamaserve.engine import SamplingParams, Task
from tests.conftest import MODEL
from tests.helpers import run_tasks, running_scheduler


def sleepy(**config):
    return running_scheduler(model=MODEL, n_threads=2, n_parallel=1, n_ctx=512, sleep_idle_seconds=1, **config)


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_a_task_submitted_while_it_sleeps_wakes_it():
    with sleepy() as engine:
        sched, _ = engine
        sched.hold().result(30)  # the vocabulary goes with the model: read it while held awake
        tokens = sched.model.tokenize("Hello")
        sched.release()
        wait_for(lambda: sched.n_sleeps == 1)
        assert sched.sleeping and sched.model.ctx is None and sched.reuse is None  # context (KV cache) and prompt cache freed
        (result,) = run_tasks(engine, [Task(tokens, SamplingParams(temperature=0), n_predict=2)])
        assert result.error is None and result.n_decoded == 2
        assert not sched.sleeping and sched.model.ctx is not None and sched.n_sleeps == 1


def test_a_call_without_waking_reads_the_empty_slots():
    with sleepy() as (sched, _):
        wait_for(lambda: sched.n_sleeps == 1)
        states = sched.call(sched.slot_states, wakes=False).result(5)
        assert [s.busy for s in states] == [False] and states[0].n_ctx > 0
        assert sched.sleeping
        sched.call(lambda: None).result(30)  # any other call needs the model: it wakes it
        assert not sched.sleeping


def test_a_hold_wakes_it_and_keeps_it_awake_until_released():
    with sleepy() as (sched, _):
        wait_for(lambda: sched.n_sleeps == 1)
        awake = sched.hold()
        awake.result(30)
        time.sleep(2.5)  # more than twice the idle time, with nothing running
        assert not sched.sleeping
        sched.release()
        released = time.monotonic()
        wait_for(lambda: sched.n_sleeps == 2)
        assert time.monotonic() - released >= 0.9  # the idle clock started at the release


def test_without_the_flag_it_never_sleeps():
    with running_scheduler(model=MODEL, n_threads=2, n_parallel=1, n_ctx=512) as (sched, _):
        time.sleep(1.5)
        assert not sched.sleeping and sched.hold().done()
        sched.release()
