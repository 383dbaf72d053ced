"""Prompt reuse beyond a slot's own cache, with the real model: the host-memory prompt cache (save,
restore, bounds, eviction), prefixes attached from other slots' cells, leaders, and the KV accounting."""

from __future__ import annotations

import random

import llama_cpp.llama_cpp as ll

from llamaserve.engine import SamplingParams, Task
from tests.conftest import MODEL
from tests.helpers import run_tasks as run, running_scheduler

SYSTEM = "You are a careful assistant who answers briefly and precisely. " * 25  # ~280 tokens


def engine(**config):
    return running_scheduler(model=MODEL, n_threads=2, **{"n_ctx": 2048, **config})


def greedy(sched, text, n=6, **kw):
    return Task(sched.model.tokenize(text), SamplingParams(temperature=0, ignore_eos=True), n_predict=n, **kw)


def on_thread(sched, fn):
    return sched.call(fn).result(timeout=30)


def test_a_conversation_pushed_out_of_its_slot_comes_back_from_host_memory():
    with engine(n_parallel=1) as e:
        sched, _ = e
        a = SYSTEM + "Question: what is two plus two?"
        run(e, [greedy(sched, a)])
        own = run(e, [greedy(sched, a)])[0]  # from the slot's own cache: only the last token evaluated
        assert own.timings.cache_n == own.n_prompt - 1
        other = run(e, [greedy(sched, "Something else entirely: the sea is")])[0]
        assert other.timings.cache_n == 0
        back = run(e, [greedy(sched, a)])[0]  # the slot holds `other`: `a` comes back from host memory
        assert (back.timings.cache_n, back.timings.prompt_n) == (back.n_prompt - 1, 1)
        assert back.text == own.text  # the same cells, byte for byte, so the same tokens
        stats = sched.stats
        assert stats.prompt_tokens_restored == back.n_prompt - 1
        info = sched.prompt_cache_info()
        assert (info.limit_mib, info.idle_slots) == (8192, True)
        assert info.entries >= 1 and info.bytes > 0 and info.tokens >= back.n_prompt


def test_without_the_host_cache_the_pushed_out_conversation_is_evaluated_again():
    with engine(n_parallel=1, cache_ram=0) as e:
        sched, _ = e
        a = SYSTEM + "Question: what is two plus two?"
        run(e, [greedy(sched, a), greedy(sched, "Something else entirely: the sea is")])
        back = run(e, [greedy(sched, a)])[0]
        assert back.timings.cache_n <= 1 and sched.stats.prompt_tokens_restored == 0
        assert sched.prompt_cache_info().limit_mib == 0 and sched.reuse.host is None


def test_the_host_cache_keeps_to_its_bound_dropping_the_least_recently_used():
    # SmolLM2-135M's sequence state is ~23 KB a token: 1 MiB holds one ~30-token conversation, not two
    with engine(n_parallel=1, cache_ram=1) as e:
        sched, _ = e
        host = sched.reuse.host
        x, y, z = (f"Topic {w}: a few words about {w} and why {w} matters to people" for w in ("rivers", "stars", "bread"))
        for text in (x, y, z):
            run(e, [greedy(sched, text, n=12)])
            assert host.bytes <= 1024 * 1024
        assert host.n_evicted >= 1 and len(host.entries) == 1  # x went when y came in
        again_y = run(e, [greedy(sched, y, n=2)])[0]
        assert again_y.timings.cache_n == again_y.n_prompt - 1  # y is the entry kept
        again_x = run(e, [greedy(sched, x, n=2)])[0]
        assert again_x.timings.cache_n < 5  # x was dropped: only what it shares with y's start
        long = run(e, [greedy(sched, SYSTEM, n=2)])[0]  # ~6 MiB of state: never stored whole
        run(e, [greedy(sched, z, n=2)])
        assert all(entry.n_tokens < long.n_prompt for entry in host.entries) and host.bytes <= 1024 * 1024


def test_a_shared_prefix_is_evaluated_once_and_held_once():
    with engine(n_parallel=4, kv_unified=True, cache_ram=0, n_ctx=4096) as e:
        sched, _ = e
        questions = [f"Question {i}: what is {i} plus {i}?" for i in range(8)]
        n_prefix = len(sched.model.tokenize(SYSTEM))
        n_questions = sum(len(sched.model.tokenize(SYSTEM + q)) - n_prefix for q in questions)
        results = run(e, [greedy(sched, SYSTEM + q) for q in questions])  # 8 at once on 4 slots
        evaluated = sched.stats.prompt_tokens
        assert all(r.error is None for r in results)
        # the first evaluates the prefix, the three admitted with it wait for it and attach it, the
        # last four find it in the slots they get
        assert evaluated <= (n_prefix + n_questions) * 1.1, (evaluated, n_prefix, n_questions)
        assert sorted(r.timings.cache_n >= n_prefix - 1 for r in results) == [False] + [True] * 7
        assert sched.stats.prompt_tokens_attached >= 3 * (n_prefix - 1)
        states = on_thread(sched, sched.slot_states)
        assert sum(s.n_shared >= n_prefix - 1 for s in states) >= 3  # cells held once, by several slots


def test_choices_of_one_prompt_still_wait_for_the_first_without_cache_prompt():
    with engine(n_parallel=3, kv_unified=True, cache_ram=0) as e:
        sched, _ = e
        group = object()
        tasks = [greedy(sched, SYSTEM, n=2, cache_prompt=False, prompt_group=group) for _ in range(3)]
        before = sched.stats.prompt_tokens
        run(e, tasks)
        assert sched.stats.prompt_tokens - before <= len(tasks[0].prompt) + 2


def test_the_kv_cache_accounting_stays_exact_through_hundreds_of_shared_prefixes():
    # n_ctx 1024 shared by 4 slots, with host save and restore and attach all in play: when every
    # sequence is dropped again, the whole cache must be free (a leaked cell would make the last
    # request, which needs almost all of it, fail)
    with engine(n_parallel=4, kv_unified=True, n_ctx=1024, cache_ram=4) as e:
        sched, _ = e
        rng = random.Random(7)
        prefixes = [f"Document {d}: " + ("facts about the number %d. " % d) * 12 for d in range(3)]
        done = 0
        while done < 240:
            wave = [greedy(sched, rng.choice(prefixes) + f"Q{done + i}: why?", n=rng.randint(1, 3)) for i in range(8)]
            results = run(e, wave)
            assert all(r.error is None for r in results), [r.error for r in results if r.error]
            done += len(wave)

        def check_and_clear():
            mem = sched.model.memory
            for s in sched.slots:
                assert ll.llama_memory_seq_pos_max(mem, s.id) == s.n_past - 1
                if s.n_past:
                    assert ll.llama_memory_seq_pos_min(mem, s.id) == 0
                s.forget_from(mem, 0)
                assert ll.llama_memory_seq_pos_max(mem, s.id) == -1

        on_thread(sched, check_and_clear)
        assert sched.stats.prompt_tokens_attached > 0 and sched.stats.prompt_tokens_restored > 0
        full = greedy(sched, "one two three four " * 252, n=4, cache_prompt=False)
        assert 1000 < len(full.prompt) < 1020
        result = run(e, [full])[0]
        assert result.error is None and result.n_decoded == 4


def test_a_bug_while_starting_a_request_fails_that_request_and_no_other(monkeypatch):
    with engine(n_parallel=1) as e:
        sched, _ = e
        real = sched.reuse.start
        calls = []

        def flaky(slot, task):
            calls.append(task)
            if len(calls) == 1:
                raise RuntimeError("injected")
            return real(slot, task)

        monkeypatch.setattr(sched.reuse, "start", flaky)
        first, second, third = run(e, [greedy(sched, f"Request {i} is about") for i in range(3)])
        assert "injected" in str(first.error) and first.error.status == 500
        assert (second.error, third.error) == (None, None) and second.n_decoded == third.n_decoded == 6
