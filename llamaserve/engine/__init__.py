"""The engine: libllama, slots and the scheduler thread. The only package that imports llama_cpp.

What other packages use of it is exported here: the Scheduler, Task and Result and their parts, the
snapshots the scheduler gives (SlotState, Occupancy), the grammar compile check, libllama's built-in
chat templates and the slot file actions."""

from llamaserve.engine import slot_files
from llamaserve.engine.chat_builtin import apply_builtin_template, builtin_template_names
from llamaserve.engine.sampler import grammar_compiles
from llamaserve.engine.scheduler import Scheduler
from llamaserve.engine.types import (
    COMPLETION, DEFAULT_SAMPLERS, EMBEDDING, RANDOM_SEED, RERANK, Occupancy, PromptProgress, Result, SamplingParams,
    SlotState, SpecParams, Task, Timings, TokenProb,
)

__all__ = ["Scheduler", "grammar_compiles", "Task", "Result", "PromptProgress", "SamplingParams", "Timings", "TokenProb",
           "DEFAULT_SAMPLERS", "RANDOM_SEED", "COMPLETION", "EMBEDDING", "RERANK", "SlotState", "SpecParams", "Occupancy",
           "apply_builtin_template", "builtin_template_names", "slot_files"]
