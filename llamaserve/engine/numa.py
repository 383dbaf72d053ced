"""--numa: ggml's NUMA strategy, set once per process before the first model loads."""

from __future__ import annotations

import ctypes
import logging

import llama_cpp.llama_cpp as ll

from llamaserve.engine.devices import loaded_library

log = logging.getLogger("llamaserve.engine")

# enum ggml_numa_strategy (ggml-cpu.h)
STRATEGIES = {"": 0, "distribute": 1, "isolate": 2, "numactl": 3}


class NumaError(ValueError):
    pass


def init_numa(strategy: str) -> None:
    """Call llama_numa_init once: ggml keeps the node map in process-wide state and refuses a second
    initialisation, so a later model (router child restarts, tests) finds the first strategy in place."""
    if strategy not in STRATEGIES:
        raise NumaError(f"invalid NUMA strategy '{strategy}' (distribute, isolate or numactl)")
    if not strategy:
        return
    if getattr(init_numa, "strategy", None) is not None:
        if init_numa.strategy != strategy:
            log.warning("NUMA strategy %s is already set for this process; --numa %s is not applied",
                        init_numa.strategy, strategy)
        return
    ll.llama_numa_init(STRATEGIES[strategy])
    init_numa.strategy = strategy
    log.info("NUMA strategy %s (%s)", strategy, "several nodes" if is_numa() else "one node: nothing to distribute")


def is_numa() -> bool:
    """Whether ggml found more than one NUMA node (only meaningful after init_numa)."""
    cpu = loaded_library("ggml-cpu")
    cpu.ggml_is_numa.restype = ctypes.c_bool
    return bool(cpu.ggml_is_numa())
