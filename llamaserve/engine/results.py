"""The Results a slot's task gets: streamed text, prompt progress, the final answer, an error.
Pure functions of the slot's state (read on the scheduler thread, which owns it)."""

from __future__ import annotations

import time

from llamaserve.engine.slot import Slot
from llamaserve.engine.types import PromptProgress, Result, Task, Timings


def timings_of(slot: Slot) -> Timings:
    now = time.perf_counter()
    prompt_end = slot.t_prompt_done or now
    return Timings(
        cache_n=slot.n_cached,
        prompt_n=slot.n_prompt - slot.n_cached,
        prompt_ms=(prompt_end - slot.t_start) * 1e3,
        predicted_n=slot.n_decoded,
        predicted_ms=(now - prompt_end) * 1e3,
        draft_n=slot.drafting.n_drafted if slot.drafting else 0,
        draft_n_accepted=slot.drafting.n_accepted if slot.drafting else 0,
    )


def progress_result(slot: Slot, stepped: bool = True) -> Result:
    task = slot.task
    elapsed_ms = (time.perf_counter() - slot.t_start) * 1e3 if stepped else 0.0
    progress = PromptProgress(total=slot.n_prompt, cache=slot.n_cached, processed=slot.n_past, time_ms=int(elapsed_ms))
    timings = None
    if task.timings_per_token:  # what is evaluated so far; nothing at all before the first step
        timings = Timings(cache_n=slot.n_cached, prompt_n=slot.n_past - slot.n_cached, prompt_ms=elapsed_ms)
    return Result(task, n_prompt=slot.n_prompt, n_cached=slot.n_cached, id_slot=slot.id, timings=timings, progress=progress)


def final_result(slot: Slot, stop_type: str, text: str) -> Result:
    task = slot.task
    if task.stream:
        tokens, probs = slot.unsent_tokens, slot.unsent_probs
    else:
        tokens, probs, text = slot.generated, slot.probs, slot.text.text
    return Result(
        task, text=text, tokens=tokens, probs=probs, done=True, stop_type=stop_type,
        stopping_word=slot.text.stopping_word, truncated=slot.truncated, n_prompt=slot.n_prompt,
        n_cached=slot.n_past, n_decoded=slot.n_decoded, timings=timings_of(slot), id_slot=slot.id,
    )


def error_result(task: Task, exc: Exception, slot: Slot | None = None) -> Result:
    return Result(task, done=True, error=exc, id_slot=slot.id if slot else -1)
