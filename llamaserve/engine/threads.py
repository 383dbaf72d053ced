"""CPU placement of the compute threads: ggml thread pools built from -C/-Cr/--cpu-strict/--prio/--poll.

llama-server hands libllama two ggml thread pools (one for single-token generation, one for
batches) carrying an affinity mask, a scheduling priority and a polling level. This build of
ggml-cpu runs its threads with OpenMP, which changes what a pool can do (ggml-cpu.c):

- the mask and the priority are applied by every OpenMP thread at the start of each graph
  computed with more than one thread, the calling (scheduler) thread included, which keeps them;
- a graph computed with one thread runs on the calling thread and applies neither, so when both
  pools have one thread this module applies the generation pool's mask and priority to the
  calling thread itself, which is the thread that will decode;
- the polling level and the paused flag are read only by ggml's own worker threads, which an
  OpenMP build does not have (OpenMP waits as OMP_WAIT_POLICY / GOMP_SPINCOUNT say): no effect.
"""

from __future__ import annotations

import ctypes
import logging
import os
from dataclasses import dataclass

import llama_cpp.llama_cpp as ll

from llamaserve.config import Config
from llamaserve.engine.devices import loaded_library

log = logging.getLogger("llamaserve.engine")

GGML_MAX_N_THREADS = 512  # ggml.h: the length of ggml_threadpool_params.cpumask
PRIO_LOW, PRIO_NORMAL, PRIO_MEDIUM, PRIO_HIGH, PRIO_REALTIME = -1, 0, 1, 2, 3  # enum ggml_sched_priority
DEFAULT_POLL = 50  # ggml_threadpool_params_init's default

# What llama-server does to the process's nice value for each --prio (common.cpp's set_process_priority)
_NICE = {PRIO_LOW: 5, PRIO_NORMAL: 0, PRIO_MEDIUM: -5, PRIO_HIGH: -10, PRIO_REALTIME: -20}
# What ggml does to each compute thread's scheduling policy (ggml-cpu.c, Linux)
_POLICY = {PRIO_LOW: (os.SCHED_BATCH, 0), PRIO_MEDIUM: (os.SCHED_FIFO, 40), PRIO_HIGH: (os.SCHED_FIFO, 80),
           PRIO_REALTIME: (os.SCHED_FIFO, 90)}


class ThreadpoolError(ValueError):
    pass


class GgmlThreadpoolParams(ctypes.Structure):
    """struct ggml_threadpool_params (ggml.h)."""

    _fields_ = [
        ("cpumask", ctypes.c_bool * GGML_MAX_N_THREADS),
        ("n_threads", ctypes.c_int),
        ("prio", ctypes.c_int),  # enum ggml_sched_priority
        ("poll", ctypes.c_uint32),
        ("strict_cpu", ctypes.c_bool),
        ("paused", ctypes.c_bool),
    ]


def _bind():
    if not hasattr(_bind, "done"):
        base, cpu, llama = loaded_library("ggml-base"), loaded_library("ggml-cpu"), ll._lib
        base.ggml_threadpool_params_init.argtypes = [ctypes.POINTER(GgmlThreadpoolParams), ctypes.c_int]
        base.ggml_threadpool_params_init.restype = None
        base.ggml_threadpool_params_match.argtypes = [ctypes.POINTER(GgmlThreadpoolParams)] * 2
        base.ggml_threadpool_params_match.restype = ctypes.c_bool
        cpu.ggml_threadpool_new.argtypes = [ctypes.POINTER(GgmlThreadpoolParams)]
        cpu.ggml_threadpool_new.restype = ctypes.c_void_p
        cpu.ggml_threadpool_free.argtypes = [ctypes.c_void_p]
        cpu.ggml_threadpool_free.restype = None
        llama.llama_attach_threadpool.argtypes = [ll.llama_context_p_ctypes, ctypes.c_void_p, ctypes.c_void_p]
        llama.llama_attach_threadpool.restype = None
        llama.llama_detach_threadpool.argtypes = [ll.llama_context_p_ctypes]
        llama.llama_detach_threadpool.restype = None
        _bind.base, _bind.cpu, _bind.llama, _bind.done = base, cpu, llama, True
    return _bind


def parse_cpu_mask(text: str) -> set[int]:
    """Hex digits, optionally after 0x; bit i is CPU i, so the rightmost digit holds CPUs 0-3."""
    digits = text.strip().lower().removeprefix("0x")
    if not digits:
        return set()
    try:
        value = int(digits, 16)
    except ValueError:
        raise ThreadpoolError(f"invalid CPU mask '{text}' (hex digits, e.g. 0xff)") from None
    cpus = {i for i in range(value.bit_length()) if value >> i & 1}
    if cpus and max(cpus) >= GGML_MAX_N_THREADS:
        raise ThreadpoolError(f"CPU mask '{text}' names CPU {max(cpus)}, ggml knows CPUs 0 to {GGML_MAX_N_THREADS - 1}")
    return cpus


def parse_cpu_range(text: str) -> set[int]:
    """lo-hi, inclusive; an empty end means the first or the last CPU ggml can name."""
    lo, dash, hi = text.strip().partition("-")
    if not dash:
        raise ThreadpoolError(f"invalid CPU range '{text}' (lo-hi, e.g. 0-7)")
    try:
        start = int(lo) if lo.strip() else 0
        end = int(hi) if hi.strip() else GGML_MAX_N_THREADS - 1
    except ValueError:
        raise ThreadpoolError(f"invalid CPU range '{text}' (lo-hi, e.g. 0-7)") from None
    if not 0 <= start <= end < GGML_MAX_N_THREADS:
        raise ThreadpoolError(f"invalid CPU range '{text}' (0 <= lo <= hi < {GGML_MAX_N_THREADS})")
    return set(range(start, end + 1))


@dataclass(frozen=True)
class PoolSpec:
    """What one pool asks for; cpus empty = wherever the OS puts the threads."""

    n_threads: int
    cpus: frozenset[int] = frozenset()
    strict: bool = False
    priority: int = PRIO_NORMAL
    poll: int = DEFAULT_POLL

    @property
    def is_default(self) -> bool:
        return not self.cpus and not self.strict and self.priority == PRIO_NORMAL and self.poll == DEFAULT_POLL

    def params(self, paused: bool = False) -> GgmlThreadpoolParams:
        p = GgmlThreadpoolParams()
        _bind().base.ggml_threadpool_params_init(ctypes.byref(p), self.n_threads)
        for cpu in self.cpus:
            p.cpumask[cpu] = True
        p.prio, p.poll, p.strict_cpu, p.paused = self.priority, self.poll, self.strict, paused
        return p

    def thread_cpus(self) -> list[frozenset[int]]:
        """The CPUs each thread may run on, as ggml assigns them: every thread the whole mask, or
        with --cpu-strict one CPU each, taken from the mask in turn (thread 0 first under OpenMP)."""
        if not self.cpus:
            return [frozenset()] * self.n_threads
        if not self.strict:
            return [self.cpus] * self.n_threads
        order = sorted(self.cpus)
        return [frozenset({order[i % len(order)]}) for i in range(self.n_threads)]


def _cpus(mask: str, cpu_range: str) -> frozenset[int]:
    # -C and -Cr complement each other: a CPU named by either is in the mask (as llama-server)
    cpus: set[int] = set()
    if mask:
        cpus |= parse_cpu_mask(mask)
    if cpu_range:
        cpus |= parse_cpu_range(cpu_range)
    return frozenset(cpus)


def pool_specs(config: Config, n_threads: int, n_threads_batch: int) -> tuple[PoolSpec, PoolSpec]:
    """The generation and batch pools; each *_batch value left None is the generation one."""
    gen = PoolSpec(n_threads, _cpus(config.cpu_mask, config.cpu_range), config.cpu_strict, config.priority, config.poll)
    if config.cpu_mask_batch is None and config.cpu_range_batch is None:
        batch_cpus = gen.cpus
    else:
        batch_cpus = _cpus(config.cpu_mask_batch or "", config.cpu_range_batch or "")
    batch = PoolSpec(
        n_threads_batch, batch_cpus,
        gen.strict if config.cpu_strict_batch is None else config.cpu_strict_batch,
        gen.priority if config.priority_batch is None else config.priority_batch,
        gen.poll if config.poll_batch is None else config.poll_batch,
    )
    warned = set()
    for spec in (gen, batch):
        if spec.priority not in _NICE:
            raise ThreadpoolError(f"invalid priority {spec.priority} (-1 low, 0 normal, 1 medium, 2 high, 3 realtime)")
        if not 0 <= spec.poll <= 100:
            raise ThreadpoolError(f"invalid polling level {spec.poll} (0 to 100)")
        if spec.cpus and len(spec.cpus) < spec.n_threads and (spec.cpus, spec.n_threads) not in warned:
            warned.add((spec.cpus, spec.n_threads))
            log.warning("the CPU mask has %d CPUs for %d threads: they will share them", len(spec.cpus), spec.n_threads)
    return gen, batch


def set_process_priority(priority: int) -> None:
    """--prio's nice value, as llama-server sets it. Linux keeps a nice value per thread, so this
    reaches the calling thread (the scheduler's) and the compute threads it starts afterwards."""
    nice = _NICE[priority]
    if nice == 0:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as exc:
        log.warning("failed to set the nice value %d for --prio %d: %s", nice, priority, exc)


def apply_to_calling_thread(spec: PoolSpec) -> None:
    """Give the calling thread what ggml would give thread 0 of the pool (its CPUs and policy)."""
    cpus = spec.thread_cpus()[0]
    if cpus:
        try:
            os.sched_setaffinity(0, cpus)
        except OSError as exc:
            log.warning("failed to set the CPU affinity %s: %s", sorted(cpus), exc)
    if spec.priority in _POLICY:
        policy, level = _POLICY[spec.priority]
        try:
            os.sched_setscheduler(0, policy, os.sched_param(level))
        except OSError as exc:
            log.warning("failed to set thread priority %d: %s", spec.priority, exc)


class Threadpools:
    """The pools attached to one llama_context; free() after llama_free of that context."""

    def __init__(self, ctx, gen: PoolSpec, batch: PoolSpec):
        lib = _bind()
        self._cpu = lib.cpu
        self.gen, self.batch = gen, batch
        self.pool = self.pool_batch = None
        p, pb = gen.params(), batch.params()
        if not lib.base.ggml_threadpool_params_match(ctypes.byref(p), ctypes.byref(pb)):
            self.pool_batch = lib.cpu.ggml_threadpool_new(ctypes.byref(pb))
            if not self.pool_batch:
                raise ThreadpoolError(f"failed to create the batch thread pool ({batch.n_threads} threads)")
            p = gen.params(paused=True)  # as llama-server: the batch pool runs first, at the prompt
        self.pool = lib.cpu.ggml_threadpool_new(ctypes.byref(p))
        if not self.pool:
            self.free()
            raise ThreadpoolError(f"failed to create the thread pool ({gen.n_threads} threads)")
        # A NULL batch pool makes libllama use the generation pool for batches too.
        lib.llama.llama_attach_threadpool(ctx, self.pool, self.pool_batch)
        if gen.n_threads == 1 and batch.n_threads == 1:
            # OpenMP ggml computes one-thread graphs on the caller and applies nothing of the pool.
            if (gen.cpus, gen.strict, gen.priority) != (batch.cpus, batch.strict, batch.priority):
                log.warning("with one thread per pool both run on the scheduler thread: it takes the generation "
                            "pool's CPU mask and priority, the batch pool's are not used")
            apply_to_calling_thread(gen)

    def free(self) -> None:
        for name in ("pool", "pool_batch"):
            handle = getattr(self, name)
            if handle:
                self._cpu.ggml_threadpool_free(handle)
                setattr(self, name, None)


def make_threadpools(ctx, config: Config, n_threads: int, n_threads_batch: int) -> Threadpools | None:
    """Pools for the context when the command line asks for anything but ggml's defaults, else None
    (libllama then lets ggml make a default pool per graph, as it always has here)."""
    gen, batch = pool_specs(config, n_threads, n_threads_batch)
    if gen.priority != PRIO_NORMAL:
        set_process_priority(gen.priority)
    if gen.is_default and batch.is_default:
        return None
    pools = Threadpools(ctx, gen, batch)
    log.info("thread pools: %s", describe(gen, batch))
    return pools


def describe(gen: PoolSpec, batch: PoolSpec) -> str:
    def one(s: PoolSpec) -> str:
        cpus = ",".join(map(str, sorted(s.cpus))) if s.cpus else "any"
        return f"{s.n_threads} threads, CPUs {cpus}{' (strict)' if s.strict else ''}, prio {s.priority}, poll {s.poll}"
    return one(gen) if gen == batch else f"generation {one(gen)}; batch {one(batch)}"
