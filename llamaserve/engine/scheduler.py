"""The scheduler thread: owns the llama_context and runs continuous batching.

Each step: admit waiting tasks to free slots (the prefix each finds cached: prompt_reuse.py),
build one batch (one token per generating slot, then prompt chunks), one
llama_decode, sample per slot, and hand all of the step's Results to the
`deliver` hook in one call.

In embedding mode (--embedding / --reranking) the same loop batches EMBEDDING
and RERANK tasks instead: each step packs whole inputs of several slots into
one ubatch, decodes once and reads one pooled vector (or score) per sequence.

With --sleep-idle-seconds N the loop unloads the model, its KV cache and the host prompt cache after N
seconds without work, and loads them again when work arrives (a task, a call(), or a request that
hold()s the model). Both happen here, on the thread that owns the model; the model object is kept,
closed, so that what it read at load time (ModelInfo, n_ctx_slot) still answers while it sleeps.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import math
import threading
import time
from typing import Callable, Iterable

import llama_cpp.llama_cpp as ll
import numpy as np

from llamaserve.config import Config
from llamaserve.engine import embeddings, media
from llamaserve.engine.admission import refusal
from llamaserve.engine.batch import Batch
from llamaserve.engine.lora import LoraAdapter, Scales
from llamaserve.engine.model import Model
from llamaserve.engine.prompt_reuse import PromptReuse
from llamaserve.engine.reasoning_budget import ReasoningBudget
from llamaserve.engine.results import error_result, final_result, progress_result, timings_of
from llamaserve.engine.sampler import SamplerChain, start_with_grammar_stack
from llamaserve.engine.slot import Slot, common_prefix
from llamaserve.engine.speculative import Speculator
from llamaserve.engine.stats import EngineStats
from llamaserve.engine.text_stream import TextStream
from llamaserve.engine.types import COMPLETION, Occupancy, PromptCacheInfo, Result, SlotState, Task, Timings
from llamaserve.errors import ExceedContextSize, InvalidRequest, ServerError, Unavailable

log = logging.getLogger("llamaserve.engine")

Deliver = Callable[[list[Result]], None]

# Returned by a function given to Scheduler.call: "not now, run me again after the next step".
DEFER = object()

# What the loop does next (Scheduler._next_action)
_STEP, _SLEEP, _WAKE, _STOP = "step", "sleep", "wake", "stop"


class Scheduler:
    def __init__(self, config: Config, deliver: Deliver):
        self.config = config
        self.deliver = deliver
        self.model: Model | None = None
        self.slots: list[Slot] = []
        self.ready = threading.Event()
        self.load_error: BaseException | None = None
        self._incoming: collections.deque[Task] = collections.deque()
        self._waiting: collections.deque[Task] = collections.deque()
        self._controls: list[tuple[Callable[[], object], concurrent.futures.Future]] = []  # see call()
        self._wake = threading.Condition()
        self._stopping = False
        self._batch_limit = config.n_batch
        self._embd_batch: media.EmbdBatch | None = None  # for media chunks, made at the first one
        self.prompt_chunk = config.n_batch
        self._thread = threading.Thread(target=self._run, name="llamaserve-scheduler", daemon=True)
        self.n_steps = 0
        self.lora_scales: Scales = ()  # LoRA scales of requests that name none (POST /lora-adapters)
        self._lora_last: Scales = ()  # the scales of the last slots decoded (round robin between settings)
        self.stats = EngineStats()
        self.reuse: PromptReuse | None = None  # set with the model
        self.speculator: Speculator | None = None  # set with the model, unless in embedding mode
        # Called on the scheduler thread with the loaded model, before `ready` is set (the HTTP side builds
        # what it derives from the model, such as the chat renderer, there: once, before any request).
        self.on_ready: Callable[[Model], None] | None = None
        # Called on the scheduler thread before the model loads: fetching it (-hf, -mu) while the HTTP side
        # already answers 503 "Loading model".
        self.before_load: Callable[[], None] | None = None
        # Sleeping on idle (--sleep-idle-seconds): `sleeping` is True from the moment the loop decides
        # to unload until the model is loaded again; changed under _wake, read from any thread.
        self.sleeping = False
        self.n_sleeps = 0  # times the model was unloaded for idleness (counted once it is unloaded)
        self._holds = 0  # requests between hold() and release(): the model may not sleep under them
        self._wakers: list[concurrent.futures.Future] = []  # hold()s waiting for the model to load again
        self._t_active = time.monotonic()  # the end of the latest work: the idle clock starts there
        self.failure: ServerError | None = None  # set by lose(): the engine is gone, every request fails
        self._kv_asleep: tuple[int, int, int] | None = None  # occupancy()'s KV figures while asleep

    # --- called from other threads ---

    def start(self) -> None:
        # libllama's grammar code recurses once per nesting level of a grammar (see sampler.py)
        start_with_grammar_stack(self._thread)

    def stop(self, timeout: float = 10.0) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def submit(self, tasks: Iterable[Task]) -> None:
        with self._wake:
            if not self._stopping:
                self._incoming.extend(tasks)
                self._wake.notify()
                return
        # Stopped (shutdown grace ran out, or the engine is lost): nothing would ever run them.
        why = Unavailable(self.failure.message) if self.failure is not None else Unavailable("server is shutting down")
        self.deliver([error_result(t, why) for t in tasks])

    def lose(self, exc: ServerError) -> None:
        """The engine is gone for good: a lost RPC server aborted inside libggml, whose failing thread
        (and with it this scheduler's, waiting on it) stays parked there (engine/rpc.py). Called from
        that thread: answer every task with exc; submit() refuses later ones with the same reason."""
        with self._wake:
            self.failure = exc
            self._stopping = True
            tasks = list(self._waiting) + list(self._incoming)
            self._incoming.clear()
        # the scheduler thread is parked inside a decode, so its slots are not changing under us
        out = [error_result(t, exc) for t in tasks] + [error_result(s.task, exc, s) for s in self.slots if s.task is not None]
        if out:
            self.deliver(out)

    def call(self, fn: Callable[[], object], wakes: bool = True) -> concurrent.futures.Future:
        """Run fn() on the scheduler thread between two steps (where it may touch the context and the
        slots); its result or exception comes back through the Future. fn may return DEFER to run again
        after the next step, e.g. until a busy slot is free: only while other work keeps steps coming.
        A call wakes a sleeping model first, unless wakes=False: then fn runs at once, here, while the
        loop sleeps (it must not need the model: the loop touches nothing meanwhile, only a reload
        replaces the slots)."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._wake:
            if self.sleeping and not wakes and not self._stopping:
                try:
                    future.set_result(fn())
                except Exception as exc:  # noqa: BLE001 - the caller's to handle
                    future.set_exception(exc)
                return future
            if not self._stopping:
                self._controls.append((fn, future))
                self._wake.notify()
                return future
        future.set_exception(Unavailable("server is shutting down"))
        return future

    def wake(self) -> None:
        """Nudge the loop (after a cancel) so idle waits notice at once."""
        with self._wake:
            self._wake.notify()

    def hold(self) -> concurrent.futures.Future:
        """A request that needs the model begins: the model does not go to sleep until its release().
        The Future is done once the model is loaded: at once when it is awake; when it sleeps, after the
        reload this starts (requests arriving meanwhile wait for the same one), or with the error that
        reload failed with. Each caller gets its own Future, so one that gives up cancels only its own."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._wake:
            self._holds += 1
            if self.sleeping and self._stopping:  # no loop left to load it
                future.set_exception(Unavailable("server is shutting down"))
                return future
            if self.sleeping:
                self._wakers.append(future)
                self._wake.notify()
                return future
        future.set_result(None)
        return future

    def release(self) -> None:
        """The end of a request that hold() began: the idle clock starts again from now."""
        with self._wake:
            self._holds -= 1
            self._t_active = time.monotonic()
            self._wake.notify()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def n_slots(self) -> int:
        return self.config.slots

    @property
    def queued(self) -> int:
        return len(self._waiting) + len(self._incoming)

    def occupancy(self) -> Occupancy:
        """Busy and free slots, waiting tasks and KV cells in use, now (from any thread; see Occupancy)."""
        slots = self.slots
        busy = [s for s in slots if s.busy]
        kv = self._kv_asleep if self.sleeping and self._kv_asleep is not None else self._kv_figures()
        return Occupancy(busy=len(busy), free=len(slots) - len(busy), queued=self.queued,
                         kv_size=kv[0], kv_tokens=kv[1], kv_tokens_busy=kv[2])

    def _kv_figures(self) -> tuple[int, int, int]:
        """KV cells: in all, held by the slots' sequences (a shared prefix once), held by busy slots."""
        slots = self.slots
        return (self.model.n_ctx if self.model is not None else 0, sum(s.n_past - s.n_shared for s in slots),
                sum(s.n_past for s in slots if s.busy))

    def slot_states(self) -> list[SlotState]:
        """Each slot's state. Call it on the scheduler thread, through call(), for a consistent copy."""
        can_draft = self.speculator is not None and self.speculator.enabled  # what an idle slot's next task does
        return [
            SlotState(id=s.id, n_ctx=s.n_ctx, busy=s.busy, task=s.task, n_prompt=s.n_prompt, n_cached=s.n_cached,
                      n_decoded=s.n_decoded, n_past=s.n_past, n_shared=s.n_shared, has_new_line=s.has_new_line,
                      speculative=s.drafting is not None if s.busy else can_draft, n_draft=s.drafting.n_drafted if s.drafting else 0,
                      n_draft_accepted=s.drafting.n_accepted if s.drafting else 0)
            for s in self.slots
        ]

    def prompt_cache_info(self) -> PromptCacheInfo:
        """The host prompt cache's size now (from any thread: plain numbers, a soft snapshot)."""
        host = self.reuse.host if self.reuse is not None else None
        return PromptCacheInfo(
            limit_mib=self.config.cache_ram if host is not None else 0,
            idle_slots=self.reuse is not None and self.reuse.cache_idle_slots,
            entries=len(host.entries) if host else 0, tokens=host.tokens if host else 0, bytes=host.bytes if host else 0,
        )

    @property
    def lora_adapters(self) -> list[LoraAdapter]:
        return self.model.lora.adapters

    def set_lora_scales(self, scales: dict[int, float]) -> None:
        """The scales of later requests that name none: the given adapters at theirs, the others at 0.
        Raises InvalidRequest for an unknown id. (One tuple assignment: the scheduler thread reads it
        when it starts a task.)"""
        lora = self.model.lora
        lora.check_ids(scales)
        self.lora_scales = lora.scales(scales)

    def validate(self, task: Task) -> None:
        """Raise the error the engine would answer this task with, before it is submitted.

        Lets HTTP handlers refuse a request (e.g. generation on an embedding-only server)
        before they start a response. Reads only what is fixed once the model is loaded.
        """
        if self.model is None:
            raise Unavailable("Loading model")
        err = self._refusal(task)
        if err is not None:
            raise err

    def _refusal(self, task: Task) -> ServerError | None:
        err = refusal(self.config, self.model, task)
        if err is None and task.kind == COMPLETION and self.speculator is not None:
            err = self.speculator.refusal(task)
        return err

    # --- the scheduler thread ---

    def _run(self) -> None:
        try:
            if self.before_load is not None:
                self.before_load()
            self._load()
            lora = self.model.lora
            self.lora_scales = lora.scales({}) if self.config.lora_init_without_apply else lora.initial
            if self.on_ready is not None:
                self.on_ready(self.model)
        except BaseException as exc:  # noqa: BLE001 - reported to whoever waits on ready
            if self.model is not None:
                self._unload()
            self.load_error = exc
            log.debug("model load failed: %r", exc)  # the server reports it (server.py), once
            self.ready.set()
            return
        self._t_active = time.monotonic()  # the idle clock starts once the model is there, not while it loads
        self.ready.set()
        try:
            while True:
                action = self._next_action()
                if action == _STOP:
                    break
                if action == _SLEEP:
                    self._fall_asleep()
                    continue
                if action == _WAKE:
                    self._wake_up()
                    continue
                # only tasks keep the model awake: calls (a /slots poll) run without delaying its sleep
                has_tasks = bool(self._waiting) or any(s.busy for s in self.slots)
                try:
                    self._step()
                except Exception as exc:  # noqa: BLE001 - a bug must fail its requests, not kill the thread
                    log.exception("scheduler step failed")
                    self._fail_active(ServerError(f"internal error: {type(exc).__name__}: {exc}"))
                if has_tasks:
                    self._t_active = time.monotonic()
        finally:
            self._fail_all(Unavailable("server is shutting down"))
            with self._wake:
                self._incoming.clear()  # answered by _fail_all
            self._fail_waiting_for_model(Unavailable("server is shutting down"))
            if not self.sleeping:
                self._unload()

    def _load(self) -> None:
        """Load the model and build what is derived from it: slots, prompt reuse, batch, speculator."""
        model = Model(self.config)
        self.model = model
        self.slots = [Slot(i, model.n_ctx_slot) for i in range(self.config.slots)]
        host_cache = self.config.cache_ram if model.has_memory and not self.config.embedding_mode else 0
        self.reuse = PromptReuse(model, self.slots, self.stats, host_cache, self.config.cache_idle_slots)
        self.batch = Batch(max(model.n_batch, len(self.slots)), len(self.slots))
        self.prompt_chunk = self.config.prompt_chunk or model.default_prompt_chunk()
        if not self.config.embedding_mode:
            self.speculator = Speculator(self.config, model, len(self.slots))

    def _unload(self) -> None:
        """Free the model, its context (the KV cache), the draft model and the host prompt cache. The
        slots stay, empty, for /slots; self.model stays, closed, for what it read at load time."""
        for slot in self.slots:
            if slot.chain:
                slot.chain.free()
        self.slots = [Slot(s.id, s.n_ctx) for s in self.slots]
        self.reuse = None
        if self.speculator is not None:
            self.speculator.close()
        if self._embd_batch is not None:  # sized for this model's embeddings
            self._embd_batch.close()
            self._embd_batch = None
        self.model.close()

    def _next_action(self) -> str:
        """Wait until there is something to do: a step (tasks or calls, moved to _waiting), falling
        asleep (idle long enough; `sleeping` is set here, under the lock, so that a hold() from now
        on waits for the reload), waking up (work for a sleeping model), or stopping."""
        with self._wake:
            while True:
                if self._stopping:
                    return _STOP
                if self.sleeping:
                    if self._incoming or self._controls or self._wakers:
                        return _WAKE
                    self._wake.wait()
                    continue
                if self._incoming or self._controls or self._has_work():
                    self._waiting.extend(self._incoming)
                    self._incoming.clear()
                    return _STEP
                left = self._idle_left()
                if left is not None and left <= 0:
                    self.sleeping = True
                    return _SLEEP
                self._wake.wait(left)

    def _idle_left(self) -> float | None:
        """Seconds until the model may sleep; None: not now (never, or a request holds it)."""
        if self.config.sleep_idle_seconds < 0 or self._holds:
            return None
        return self._t_active + self.config.sleep_idle_seconds - time.monotonic()

    def _fall_asleep(self) -> None:
        log.info("idle for %d s: unloading the model and its KV cache until a request needs them",
                 self.config.sleep_idle_seconds)
        self._waiting.clear()  # only cancelled tasks can be left there (the loop saw no work)
        # what /metrics shows of the KV cache while asleep, as llama-server serves its metrics from a
        # snapshot taken on entering sleep: a scrape of a sleeping server reads what it read just before
        self._kv_asleep = self._kv_figures()
        self._unload()
        self.n_sleeps += 1

    def _wake_up(self) -> None:
        log.info("waking up: loading the model again")
        try:
            self._load()
        except Exception as exc:  # noqa: BLE001 - answered to the requests that wanted it; the next one tries again
            log.error("the model could not be loaded again: %s", exc)
            self._unload()  # what did load (the model, when its draft model failed) goes again
            self._fail_waiting_for_model(Unavailable(f"the model could not be loaded again after sleeping: {exc}"))
            return
        with self._wake:
            self.sleeping = False
            self._t_active = time.monotonic()
            wakers, self._wakers = self._wakers, []
        for future in wakers:
            if future.set_running_or_notify_cancel():
                future.set_result(None)

    def _fail_waiting_for_model(self, exc: ServerError) -> None:
        """Answer every hold(), task and call() that waits for the model with exc."""
        with self._wake:
            wakers, self._wakers = self._wakers, []
            tasks = list(self._incoming)
            self._incoming.clear()
            controls, self._controls = self._controls, []
        if tasks:
            try:
                self.deliver([error_result(t, exc) for t in tasks])
            except Exception:  # noqa: BLE001 - the loop may already be closed at shutdown
                pass
        for future in wakers + [f for _, f in controls]:
            if future.set_running_or_notify_cancel():
                future.set_exception(exc)

    def _has_work(self) -> bool:
        return any(s.busy for s in self.slots) or any(not t.cancelled for t in self._waiting)

    def _step(self) -> None:
        out: list[Result] = []
        self._run_controls()
        self._drop_cancelled()
        self._admit(out)
        if any(s.busy for s in self.slots):
            if self.config.embedding_mode:
                self._decode_embeddings(out)
            else:
                self._decode_and_sample(out)
        if out:
            self.deliver(out)

    def _run_controls(self) -> None:
        if not self._controls:  # read without the lock: a call added meanwhile runs next step
            return
        with self._wake:
            controls, self._controls = self._controls, []
        deferred = []
        for fn, future in controls:
            if future.cancelled():  # the caller is gone
                continue
            try:
                value = fn()
            except Exception as exc:  # noqa: BLE001 - the caller's to handle
                if future.set_running_or_notify_cancel():
                    future.set_exception(exc)
                continue
            if value is DEFER:
                deferred.append((fn, future))
            elif future.set_running_or_notify_cancel():
                future.set_result(value)
        if deferred:
            with self._wake:
                self._controls[:0] = deferred

    def _drop_cancelled(self) -> None:
        if any(t.cancelled for t in self._waiting):
            self._waiting = collections.deque(t for t in self._waiting if not t.cancelled)
        for slot in self.slots:
            if slot.task is not None and slot.task.cancelled:
                log.debug("slot %d: task %d cancelled after %d tokens", slot.id, slot.task.id, slot.n_decoded)
                self._release(slot)

    # --- admission ---

    def _admit(self, out: list[Result]) -> None:
        if not self._waiting:
            return
        still: collections.deque[Task] = collections.deque()
        try:
            while self._waiting:
                task = self._waiting.popleft()
                refused = self._refusal(task)
                if refused is not None:
                    out.append(error_result(task, refused))
                    continue
                if task.kind == COMPLETION:
                    # resolved when the task starts (the server's scales may change while it waits), as llama-server
                    task.lora_scales = self.model.lora.resolve(task.lora, self.lora_scales)
                slot = self._pick_slot(task, out)
                if slot is None:
                    if not task.cancelled and task.id_slot < len(self.slots):
                        still.append(task)
                    continue
                try:
                    self._start(slot, task, out)
                except Exception as exc:  # noqa: BLE001 - a bug fails this request, not the ones waiting
                    log.exception("slot %d: starting task %d failed", slot.id, task.id)
                    slot.forget_from(self.model.memory, 0)  # whatever it was given halfway is not trusted
                    if slot.task is task:
                        self._release(slot)
                    out.append(error_result(task, ServerError(f"internal error: {type(exc).__name__}: {exc}")))
        finally:
            # a task popped but neither started nor answered would wait forever: the rest go back in line
            self._waiting = still + self._waiting

    def _pick_slot(self, task: Task, out: list[Result]) -> Slot | None:
        if task.id_slot >= len(self.slots):
            out.append(error_result(task, InvalidRequest(f"invalid slot id {task.id_slot}: there are {len(self.slots)} slots")))
            return None
        if task.id_slot >= 0:
            slot = self.slots[task.id_slot]
            return None if slot.busy else slot
        free = [s for s in self.slots if not s.busy]
        if not free:
            return None
        threshold = self.config.slot_prompt_similarity
        if threshold > 0 and task.prompt:
            best, best_len = None, 0
            for s in free:
                # a cache computed with other LoRA scales is no use to this task
                n = common_prefix(s.cache, task.prompt) if s.lora == task.lora_scales else 0
                if n > best_len:
                    best, best_len = s, n
            if best is not None and best_len / len(task.prompt) > threshold:
                return best
        return min(free, key=lambda s: s.t_last_used)

    def _start(self, slot: Slot, task: Task, out: list[Result]) -> None:
        if task.kind != COMPLETION:
            self._start_embedding(slot, task)
            return
        prompt = task.prompt
        if len(prompt) >= slot.n_ctx:
            out.append(error_result(task, ExceedContextSize(len(prompt), slot.n_ctx)))
            return
        if task.params.ignore_eos:
            # as llama-server: ignore_eos is end-of-generation biases of -inf, shown in the request's
            # logit_bias (generation_settings, /slots)
            task.params.logit_bias = [*task.params.logit_bias, *((t, -math.inf) for t in self.model.eog_tokens)]
        try:
            chain = SamplerChain(self.model, task.params)
        except ServerError as exc:
            out.append(error_result(task, exc))
            return
        except Exception as exc:  # noqa: BLE001 - e.g. a value ctypes cannot pass: this request's fault
            out.append(error_result(task, InvalidRequest(f"invalid sampling parameters: {exc}")))
            return
        # media positions hold pseudo ids (engine/media.py), which no sampler may see
        chain.accept_prompt([t for t in prompt if t >= 0] if task.media else prompt)
        begin = self.reuse.start(slot, task)

        slot._reset_task_state()
        slot.task = task
        slot.state = Slot.PROMPT
        slot.chain = chain
        slot.budget = ReasoningBudget(task.params.reasoning) if task.params.reasoning else None
        slot.text = TextStream(list(task.stop))
        slot.prompt_np = np.asarray(prompt, dtype=np.int32)
        slot.n_prompt = len(prompt)
        slot.n_cached = begin.n_cached
        slot.leader, slot.follow_n = begin.leader, begin.follow_n
        slot.t_start = time.perf_counter()
        # drafts are proposed from the tokens of the prompt, where media has no token to propose
        slot.drafting = self.speculator.start(task) if self.speculator is not None and not task.media else None
        self.stats.prompt_tokens_cached += begin.n_cached
        log.debug("slot %d: task %d, %d prompt tokens, %d cached%s", slot.id, task.id, len(prompt), begin.n_cached,
                  f", waiting for slot {begin.leader.id} to evaluate {begin.follow_n}" if begin.leader else "")
        self.reuse.started(slot)
        if task.stream and task.return_progress:
            out.append(progress_result(slot, stepped=False))

    def _start_embedding(self, slot: Slot, task: Task) -> None:
        # Stateless: the slot's sequence is emptied after every decode, nothing is cached.
        slot._reset_task_state()
        slot.task = task
        slot.state = Slot.PROMPT
        slot.prompt_np = np.asarray(task.prompt, dtype=np.int32)
        slot.n_prompt = len(task.prompt)
        slot.t_start = time.perf_counter()

    # --- one batch ---

    def _lora_turn(self) -> Scales:
        """The LoRA scales of the slots decoded this step, applied to the context.

        The scales hold for the whole llama_decode, so slots with different scales never share a
        batch: each step decodes the slots of one setting, taking the settings in turn (round robin)
        so that every request makes progress. One setting (the usual case) costs a set of tuples."""
        lora = self.model.lora
        if not len(lora):
            return ()
        groups = {s.lora for s in self.slots if s.state != Slot.IDLE}
        if len(groups) <= 1:
            scales = groups.pop() if groups else self.lora_scales
        else:
            order = sorted(groups)
            scales = next((g for g in order if g > self._lora_last), order[0])
        self._lora_last = scales
        lora.apply(self.model.ctx, scales)
        return scales

    def _decode_and_sample(self, out: list[Result]) -> None:
        batch = self.batch
        batch.clear()
        limit = min(self._batch_limit, batch.capacity)
        lora = self._lora_turn()
        if self.model.projector is not None:
            self._decode_media(lora, out)
        generating = [s for s in self.slots if s.state == Slot.GENERATE and s.lora == lora]
        for slot in generating:
            slot.i_batch = batch.add(slot.next_token, slot.n_past, slot.id, True)
        drafted = self._add_drafts(generating, limit)
        t_step = time.perf_counter()  # (a draft model's own time is not the verification's)
        chunks: list[tuple[Slot, int]] = []
        if self.config.cont_batching or not generating:
            prompting = sorted(
                (s for s in self.slots if s.state == Slot.PROMPT and s.lora == lora and s.leader is None),
                key=lambda s: s.t_start,
            )
            if prompting and sum(s.busy and s.leader is None for s in self.slots) > 1:
                # others are waiting on this step (choices that share this prompt are not): bound its
                # prompt work (see Config.prompt_chunk)
                limit = min(limit, batch.n + self.prompt_chunk)
            for slot in prompting:
                if batch.n >= limit:
                    break
                start = slot.n_past
                k = min(slot.n_prompt - start, limit - batch.n)
                if slot.task.media:
                    # text up to the next media chunk (decoded on its own: see _decode_media)
                    m = media.next_media(slot.task.media, start)
                    if m is not None:
                        k = min(k, m - start)
                    if k == 0:
                        continue
                last = start + k == slot.n_prompt
                slot.i_batch = batch.add_span(slot.prompt_np[start : start + k], start, slot.id, last)
                chunks.append((slot, k))
        if batch.n == 0:
            return

        t0 = time.perf_counter()
        ret = batch.decode(self.model.ctx)
        self.n_steps += 1
        if ret != 0:
            self._decode_failed(ret, generating, chunks, out, bool(drafted))
            return
        self._batch_limit = self.config.n_batch

        now = time.perf_counter()
        for slot in generating:
            if slot not in drafted:
                slot.cache.append(slot.next_token)
        for slot, k in chunks:
            start = slot.n_past
            slot.cache.extend(slot.prompt_np[start : start + k].tolist())
            if slot.n_past == slot.n_prompt:
                slot.state = Slot.GENERATE
                slot.t_prompt_done = now
                generating.append(slot)
                if slot.drafting is not None:
                    self.speculator.begin(slot.id, slot.drafting)
            self.reuse.follow(slot)
            if slot.task.stream and slot.task.return_progress:
                out.append(progress_result(slot))  # before the first token, as llama-server sends it
        self._count_decode(sum(k for _, k in chunks), now - t0)
        for slot in generating:
            if slot in drafted:
                self._verify(slot, out)
            else:
                self._sample(slot, out)
        if not chunks and self.speculator is not None:
            # what a step of this many positions costs, decode and sampling: the draft planner's measure
            self.speculator.step_cost.record(batch.n, time.perf_counter() - t_step)

    # --- images and audio ---

    def _decode_media(self, lora: Scales, out: list[Result]) -> None:
        """Decode the media chunk each prompting slot has reached: its embeddings (encoded once per
        media content, engine/media.py) in llama_decode calls of their own, since a llama_batch holds
        either token ids or embeddings. A chunk that ends the prompt gives the first token here."""
        for slot in self.slots:
            task = slot.task
            if slot.state != Slot.PROMPT or not task or not task.media or slot.lora != lora or slot.leader is not None:
                continue
            span = media.span_at(task.media, slot.n_past)
            if span is None:
                continue
            t0 = time.perf_counter()
            try:
                embd = self.model.projector.embeddings(span)
                self._decode_embd(slot, span, embd)
            except ServerError as exc:
                slot.forget_from(self.model.memory, 0)
                out.append(error_result(task, exc, slot))
                self._release(slot)
                continue
            slot.cache.extend(task.prompt[span.start : span.end])
            self._count_decode(span.n_tokens, time.perf_counter() - t0)
            self.reuse.follow(slot)
            if task.stream and task.return_progress:
                out.append(progress_result(slot))
            if slot.n_past == slot.n_prompt:
                slot.state = Slot.GENERATE
                slot.t_prompt_done = time.perf_counter()
                self._sample(slot, out)

    def _decode_embd(self, slot: Slot, span, embd) -> None:
        n_batch = self.model.n_batch
        if span.non_causal and span.n_tokens > self.model.n_ubatch:
            raise InvalidRequest(f"the {span.kind} takes {span.n_tokens} tokens, more than the physical batch "
                                 f"(-ub {self.model.n_ubatch}) that must hold it whole for this model")
        if self._embd_batch is None:
            self._embd_batch = media.EmbdBatch(n_batch, embd.shape[1])
        ctx = self.model.ctx
        if span.non_causal:
            ll.llama_set_causal_attn(ctx, False)
        try:
            for i in range(0, span.n_tokens, n_batch):
                part = embd[i : i + n_batch]
                last = i + len(part) == span.n_tokens and span.end == slot.n_prompt
                ret = self._embd_batch.decode(ctx, part, span.start + i, slot.id, last)
                if ret != 0:
                    raise ServerError(f"llama_decode failed with status {ret} on {span.kind} embeddings")
        finally:
            if span.non_causal:
                ll.llama_set_causal_attn(ctx, True)
        slot.i_batch = (span.n_tokens - 1) % n_batch

    # --- speculative decoding ---

    def _add_drafts(self, generating: list[Slot], limit: int) -> set[Slot]:
        """Each drafting slot's draft, after its pending token, with logits at every position; the
        slots whose draft went in."""
        spec = self.speculator
        if spec is None:
            return set()
        wants = []
        for slot in generating:
            if slot.drafting is None:
                continue
            # room for the draft, the pending token and one more (a context shift needs a free cell, as
            # llama-server keeps one), and within n_predict with the token sampled after the draft
            room = slot.n_ctx - slot.n_past - 2
            if slot.task.n_predict >= 0:
                room = min(room, slot.task.n_predict - slot.n_decoded - 1)
            if room > 0:
                wants.append((slot.id, slot.drafting, lambda s=slot: np.asarray([*s.cache, s.next_token], dtype=np.int32), room))
        if not wants:
            return set()
        spec.propose(wants)
        spec.trim([s.drafting for s in generating if s.drafting is not None and s.drafting.draft], len(generating))
        batch = self.batch
        drafted = set()
        for slot in generating:
            d = slot.drafting
            if d is None or not d.draft:
                continue
            d.draft = d.draft[:max(0, limit - batch.n)]  # the batch bounds the step; the first slots draft first
            if not d.draft:
                continue
            d.i_batch = [slot.i_batch] + [batch.add(t, slot.n_past + 1 + j, slot.id, True) for j, t in enumerate(d.draft)]
            drafted.add(slot)
        return drafted

    def _verify(self, slot: Slot, out: list[Result]) -> None:
        """Sample each position of the slot's draft with its own chain, in order, keeping drafted tokens
        while the chain picks them; every sampled token is emitted as one sampled alone would be."""
        d = slot.drafting
        draft, n_draft = d.draft, len(d.draft)
        mem = self.model.memory
        slot.cache.append(slot.next_token)  # decoded with the draft: the KV cache holds it
        d.n_drafted += n_draft  # (counted before the tokens are emitted: the last one's Result shows them)
        n_accepted = 0
        for j, idx in enumerate(d.i_batch):
            picked = self._pick(slot, idx, out)
            if picked is None:  # failed: the slot was released
                break
            token, prob = picked
            if j < n_draft and self.speculator.synth:
                # benchmarking: kept or not by a draw, whatever the model says (never a drafted end of text)
                accepted = self.speculator.synth_accepts(d, j) and draft[j] not in self.model.eog_set
                if accepted:
                    token = draft[j]
            else:
                accepted = j < n_draft and token == draft[j]
            if accepted:
                n_accepted += 1
                d.n_accepted += 1
            else:
                # the cells after the last kept token leave before the token is emitted (a context
                # shift there must find none)
                ll.llama_memory_seq_rm(mem, slot.id, slot.n_past, -1)
            if not self._emit(slot, token, prob, out) or not accepted:
                break
            slot.cache.append(token)
        ll.llama_memory_seq_rm(mem, slot.id, slot.n_past, -1)  # stopped on an accepted token: the rest go
        self.stats.drafted(n_draft, n_accepted)
        self.speculator.verified(d, n_accepted)
        d.draft, d.i_batch = [], []

    # --- one batch of embedding / rerank inputs ---

    def _decode_embeddings(self, out: list[Result]) -> None:
        """Whole inputs of several slots in one decode, oldest first so that none starves;
        every input fits alone (checked on admission), so the oldest always goes."""
        waiting = sorted((s for s in self.slots if s.state == Slot.PROMPT), key=lambda s: s.t_start)
        for slot in waiting:
            if slot.task.media:
                self._embed_media(slot, out)  # alone, in decodes of its own
        batch = self.batch
        batch.clear()
        limit = min(self.model.n_ubatch, batch.capacity)
        spans: list[tuple[Slot, int]] = []
        for slot in waiting:
            if slot.state != Slot.PROMPT:
                continue
            if batch.n + slot.n_prompt > limit:
                continue
            first = batch.n
            batch.add_span(slot.prompt_np, 0, slot.id, True, logits_all=True)
            spans.append((slot, first))
        if not spans:
            return
        self.model.lora.apply(self.model.ctx, self.lora_scales)
        t0 = time.perf_counter()
        ret = batch.decode(self.model.ctx)
        self.n_steps += 1
        now = time.perf_counter()
        if ret != 0:
            log.error("llama_decode failed (%d) on %d embedding inputs (%d tokens)", ret, len(spans), batch.n)
        else:
            self._count_decode(sum(s.n_prompt for s, _ in spans), now - t0)
        for slot, first in spans:
            task = slot.task
            if ret != 0:
                result = error_result(task, ServerError(f"llama_decode failed with status {ret}"), slot)
            else:
                try:
                    result = embeddings.result(self.model, slot, first)
                except ServerError as exc:
                    result = error_result(task, exc, slot)
                result.timings = Timings(prompt_n=slot.n_prompt, prompt_ms=(now - t0) * 1e3)
            out.append(result)
            if self.model.has_memory:
                ll.llama_memory_seq_rm(self.model.memory, slot.id, -1, -1)
            self._release(slot)

    def _embed_media(self, slot: Slot, out: list[Result]) -> None:
        """An input with images or audio, alone: its text runs and media chunks decoded in turn into its
        sequence (as llama-server evaluates the chunks), its vector read after the last of them (pooling
        "none": the rows of that last decode)."""
        task, ctx, batch = slot.task, self.model.ctx, self.batch
        self.model.lora.apply(ctx, self.lora_scales)
        t0 = time.perf_counter()
        pos, n_last = 0, 0
        try:
            while pos < slot.n_prompt:
                span = media.span_at(task.media, pos)
                if span is not None:
                    self._decode_embd(slot, span, self.model.projector.embeddings(span))
                    pos, n_last = span.end, slot.i_batch + 1
                    continue
                nxt = media.next_media(task.media, pos)
                end = slot.n_prompt if nxt is None else nxt
                batch.clear()
                batch.add_span(slot.prompt_np[pos:end], pos, slot.id, True, logits_all=True)
                ret = batch.decode(ctx)
                self.n_steps += 1
                if ret != 0:
                    raise ServerError(f"llama_decode failed with status {ret}")
                pos, n_last = end, end - pos
            result = embeddings.result(self.model, slot, 0, n_last)
            now = time.perf_counter()
            self._count_decode(slot.n_prompt, now - t0)
            result.timings = Timings(prompt_n=slot.n_prompt, prompt_ms=(now - t0) * 1e3)
        except ServerError as exc:
            result = error_result(task, exc, slot)
        out.append(result)
        ll.llama_memory_seq_rm(self.model.memory, slot.id, -1, -1)
        self._release(slot)

    def _decode_failed(self, ret: int, generating: list[Slot], chunks, out: list[Result], drafted: bool) -> None:
        n = self.batch.n
        for slot in generating:
            if slot.drafting is not None:
                slot.drafting.draft = []
        if ret == 1 and self.model.unified_kv and self.reuse.drop_idle():
            return  # idle slots' cached prompts shared the cells: retry without them (as llama-server)
        if ret == 1 and (chunks or drafted) and n > 1:
            # No room in the KV cache for the whole batch: retry with half of it next step (the
            # prompt and draft parts shrink; each generating slot always gets its one token).
            self._batch_limit = max(1, n // 2)
            log.warning("llama_decode could not fit %d tokens, retrying with %d", n, self._batch_limit)
            return
        if ret == 1:
            # Not even one token per generating slot fits: the cache (shared, with --kv-unified) is
            # full. llama-server fails every slot; failing the one holding the most of it frees room
            # and the others go on.
            victim = max(generating + [s for s, _ in chunks], key=lambda s: s.n_past)
            held = victim.n_past
            log.warning("slot %d: the KV cache is full; failing its request, which holds %d cells", victim.id, held)
            victim.forget_from(self.model.memory, 0)
            out.append(error_result(victim.task, ServerError(
                f"context size has been exceeded: the KV cache of {self.model.n_ctx} tokens is full, and this "
                f"request held {held} of them"), victim))
            self._release(victim)
            return
        log.error("llama_decode failed (%d) on a batch of %d tokens", ret, n)
        for slot in generating + [s for s, _ in chunks]:
            if slot.task is not None:
                slot.forget_from(self.model.memory, 0)
                out.append(error_result(slot.task, ServerError(f"llama_decode failed with status {ret}"), slot))
                self._release(slot)

    # --- sampling and stopping ---

    def _sample(self, slot: Slot, out: list[Result]) -> None:
        picked = self._pick(slot, slot.i_batch, out)
        if picked is not None:
            self._emit(slot, *picked, out)

    def _pick(self, slot: Slot, idx: int, out: list[Result]) -> tuple[int, object] | None:
        """The token at batch index idx, from the slot's chain (or forced by its reasoning budget), and
        its probabilities; None when sampling failed (the slot's request has its error, the slot is free)."""
        task = slot.task
        budget = slot.budget
        forced = budget.forced() if budget else None
        # a budget that ran out closes the thoughts only between characters (as llama.cpp), so
        # that they never end in half a UTF-8 sequence
        waiting = forced is not None and slot.text.mid_character
        token = None
        try:
            if forced is not None and not waiting:
                emitted, prob = slot.chain.force(self.model.ctx, idx, forced)
                if emitted:
                    token = forced
                else:
                    budget.stop_forcing()
            if token is None:
                token, prob = slot.chain.sample(self.model.ctx, idx)
        except ServerError as exc:
            out.append(error_result(task, exc, slot))
            self._release(slot)
            return None
        if budget and not waiting:
            budget.feed(token)
        return token, prob

    def _emit(self, slot: Slot, token: int, prob, out: list[Result]) -> bool:
        """Take a sampled token: its text, the stop checks, a streamed Result. False when the task ended
        (the slot is free then)."""
        task = slot.task
        slot.n_decoded += 1
        slot.next_token = token
        stop_type = "none"
        text = ""
        if token in self.model.eog_set and not task.params.ignore_eos:
            stop_type = "eos"
            if self.config.special:  # -sp: llama-server writes the end-of-generation token's text too
                text = slot.text.push(self.model.piece(token, special=True))
        else:
            slot.generated.append(token)
            if prob is not None:
                slot.probs.append(prob)
                slot.unsent_probs.append(prob)
            slot.unsent_tokens.append(token)
            special = task.special_pieces
            if special and token in special:
                piece = special[token]
            else:  # -sp: special tokens as their text, as llama-server's --special writes them
                piece = self.model.piece(token, special=self.config.special)
            text = slot.text.push(piece)
            if "\n" in text:
                slot.has_new_line = True
            if slot.text.stopped:
                stop_type = "word"
            elif task.n_predict >= 0 and slot.n_decoded >= task.n_predict:
                stop_type = "limit"
            elif (
                task.t_max_predict_ms > 0
                and slot.has_new_line
                and (time.perf_counter() - slot.t_prompt_done) * 1e3 > task.t_max_predict_ms
            ):
                stop_type = "limit"
            elif slot.n_past + 1 >= slot.n_ctx and not (self.config.ctx_shift and not slot.task.media
                                                         and slot.shift_context(self.model.memory, self.model.info.add_bos)):
                stop_type = "limit"
                slot.truncated = True

        if stop_type != "none":
            text += slot.text.finish()
            out.append(final_result(slot, stop_type, text))
            self._release(slot)
            return False
        if task.stream and text:
            out.append(Result(task, text=text, tokens=slot.unsent_tokens, probs=slot.unsent_probs,
                              n_decoded=slot.n_decoded, id_slot=slot.id, timings=timings_of(slot) if task.timings_per_token else None))
            slot.unsent_tokens, slot.unsent_probs = [], []
        return True

    def _count_decode(self, n_prompt_tokens: int, seconds: float) -> None:
        n_busy = sum(1 for s in self.slots if s.busy)
        self.stats.decoded(n_prompt_tokens, seconds, n_busy, max(s.n_past for s in self.slots))

    def _release(self, slot: Slot) -> None:
        for s in self.slots:
            if s.leader is slot:  # it will not finish the prompt: they evaluate it themselves
                s.leader = None
        if slot.n_decoded:  # finished, failed or cancelled: what was generated counts (as in llama-server)
            self.stats.generated(slot.n_decoded, time.perf_counter() - slot.t_prompt_done)
        if slot.chain is not None:
            slot.chain.free()
        slot.task = None
        slot.state = Slot.IDLE
        slot.t_last_used = time.perf_counter()
        slot._reset_task_state()

    def _fail_active(self, exc: ServerError) -> None:
        """After an unexpected error in a step: fail the tasks in slots and forget their KV state."""
        out = []
        for slot in self.slots:
            if slot.task is not None:
                out.append(error_result(slot.task, exc, slot))
                slot.forget_from(self.model.memory, 0)
                self._release(slot)
        if out:
            self.deliver(out)

    def _fail_all(self, exc: ServerError) -> None:
        out = [error_result(t, exc) for t in list(self._waiting) + list(self._incoming)]
        out += [error_result(s.task, exc, s) for s in self.slots if s.task is not None]
        if out:
            try:
                self.deliver(out)
            except Exception:  # noqa: BLE001 - the loop may already be closed at shutdown
                pass
