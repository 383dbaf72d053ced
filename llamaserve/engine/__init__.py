"""The engine: libllama, slots and the scheduler thread. The only package that imports llama_cpp."""

from llamaserve.engine.sampler import grammar_compiles
from llamaserve.engine.scheduler import Scheduler
from llamaserve.engine.types import (
    COMPLETION, DEFAULT_SAMPLERS, EMBEDDING, RANDOM_SEED, RERANK, PromptProgress, Result, SamplingParams, Task, Timings,
    TokenProb,
)

__all__ = ["Scheduler", "grammar_compiles", "Task", "Result", "PromptProgress", "SamplingParams", "Timings", "TokenProb",
           "DEFAULT_SAMPLERS", "RANDOM_SEED", "COMPLETION", "EMBEDDING", "RERANK"]
