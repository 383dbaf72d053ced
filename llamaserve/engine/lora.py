"""LoRA adapters: loaded once beside the model, applied to the llama_context with per-step scales.

The scales are a property of the whole context at decode time (libllama adds scale * B·A to the
weights for every sequence in the batch), so the scheduler decodes requests with different scales
in different llama_decode calls and calls `apply` before each; `apply` only reaches libllama when
the scales change, because a change makes libllama re-plan its compute graph.
"""

from __future__ import annotations

import ctypes
import logging
import math
from dataclasses import dataclass

import llama_cpp.llama_cpp as ll

from llamaserve.config import LoraSpec
from llamaserve.errors import InvalidRequest, ServerError

log = logging.getLogger("llamaserve.engine")

Scales = tuple[float, ...]  # one scale per loaded adapter, by id


class LoraLoadError(ServerError):
    pass


@dataclass(frozen=True)
class LoraAdapter:
    id: int
    path: str
    task_name: str  # adapter.lora.task_name from the GGUF, if any
    prompt_prefix: str  # adapter.lora.prompt_prefix from the GGUF, if any


def as_float32(x: float) -> float:
    """The scale as libllama will hold it, so equal scales compare equal here too."""
    return ctypes.c_float(x).value


class LoraSet:
    """The adapters of one model, their ctypes arrays, and the scales the context has now."""

    def __init__(self, model, specs: list[LoraSpec], last_error=lambda: ""):
        self._ptrs: list = []
        infos: list[LoraAdapter] = []
        try:
            for i, spec in enumerate(specs):
                ptr = ll.llama_adapter_lora_init(model, spec.path.encode())
                if not ptr:
                    reason = last_error()
                    raise LoraLoadError(f"failed to load LoRA adapter {spec.path}" + (f": {reason}" if reason else
                                        " (not a LoRA adapter for this model?)"))
                self._ptrs.append(ptr)
                infos.append(LoraAdapter(i, spec.path, self._meta(ptr, "adapter.lora.task_name"),
                                         self._meta(ptr, "adapter.lora.prompt_prefix")))
                log.info("loaded LoRA adapter %d: %s (scale %g)", i, spec.path, spec.scale)
        except BaseException:
            self.free()
            raise
        self.adapters = infos
        self.initial: Scales = tuple(as_float32(s.scale) for s in specs)
        n = len(self._ptrs)
        self._array = (ll.llama_adapter_lora_p_ctypes * n)(*self._ptrs) if n else None
        self._applied: Scales = (0.0,) * n  # a new context has no adapters applied

    def __len__(self) -> int:
        return len(self._ptrs)

    @staticmethod
    def _meta(ptr, key: str) -> str:
        buf = ctypes.create_string_buffer(1024)
        n = ll.llama_adapter_meta_val_str(ptr, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", "replace") if n >= 0 else ""

    def scales(self, given: dict[int, float]) -> Scales:
        """Every adapter's scale: the given ones, and 0 for adapters not named (as llama-server does)."""
        return tuple(as_float32(given.get(i, 0.0)) for i in range(len(self._ptrs)))

    def resolve(self, overrides: dict[int, float] | None, default: Scales) -> Scales:
        """The scales a request runs with: `default` (the server's) when it names none."""
        return self.scales(overrides) if overrides else default

    def check_ids(self, scales: dict[int, float]) -> None:
        """Raise InvalidRequest unless every id is a loaded adapter (and some adapter is loaded)."""
        n = len(self._ptrs)
        if not n:
            raise InvalidRequest('"lora": no LoRA adapters are loaded')
        for i, scale in scales.items():
            if not 0 <= i < n:
                raise InvalidRequest(f'"lora": unknown adapter id {i} (loaded adapters have ids 0 to {n - 1})')
            if not math.isfinite(scale):
                raise InvalidRequest(f'"lora": the scale of adapter {i} must be a finite number')

    def apply(self, ctx, scales: Scales) -> None:
        """Make `scales` the context's adapter scales (scheduler thread only)."""
        if scales == self._applied:
            return
        ll.llama_set_adapters_lora(ctx, self._array, len(scales), (ctypes.c_float * len(scales))(*scales))
        self._applied = scales

    def free(self) -> None:
        # Before llama_model_free (which would free them too) and after llama_free of the context.
        for ptr in self._ptrs:
            ll.llama_adapter_lora_free(ptr)
        self._ptrs = []
        self._array = None
