"""Control vectors (--control-vector, --control-vector-scaled): per-layer directions added to the
residual stream, read from GGUF files and handed to libllama's llama_set_adapter_cvec.

A file holds one f32 vector of n_embd per layer, tensors named "direction.<layer>" with layers
counted from 1 (layer 0 has no direction). Each file is scaled and the files are summed, so two
vectors can be blended. The GGUF metadata is read by ggml's own gguf reader; the tensor data,
plain f32 at known offsets, is read with numpy.
"""

from __future__ import annotations

import ctypes
import logging
import re

import llama_cpp.llama_cpp as ll
import numpy as np

from llamaserve.config import LoraSpec
from llamaserve.engine.devices import loaded_library
from llamaserve.errors import ServerError

log = logging.getLogger("llamaserve.engine")

GGML_TYPE_F32 = 0
GGML_MAX_DIMS = 4
_DIRECTION = re.compile(r"direction\.(\d+)")


class ControlVectorError(ServerError):
    pass


class _GgufInitParams(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]  # struct gguf_init_params


def _gguf():
    if not hasattr(_gguf, "lib"):
        lib = loaded_library("ggml-base")
        lib.gguf_init_from_file.argtypes = [ctypes.c_char_p, _GgufInitParams]
        lib.gguf_init_from_file.restype = ctypes.c_void_p
        lib.gguf_free.argtypes = [ctypes.c_void_p]
        lib.gguf_free.restype = None
        lib.gguf_get_n_tensors.argtypes = [ctypes.c_void_p]
        lib.gguf_get_n_tensors.restype = ctypes.c_int64
        lib.gguf_get_data_offset.argtypes = [ctypes.c_void_p]
        lib.gguf_get_data_offset.restype = ctypes.c_size_t
        lib.gguf_get_tensor_name.argtypes = [ctypes.c_void_p, ctypes.c_int64]
        lib.gguf_get_tensor_name.restype = ctypes.c_char_p
        lib.gguf_get_tensor_offset.argtypes = [ctypes.c_void_p, ctypes.c_int64]
        lib.gguf_get_tensor_offset.restype = ctypes.c_size_t
        lib.gguf_get_tensor_type.argtypes = [ctypes.c_void_p, ctypes.c_int64]
        lib.gguf_get_tensor_type.restype = ctypes.c_int
        lib.gguf_get_tensor_ne.argtypes = [ctypes.c_void_p, ctypes.c_int64]
        lib.gguf_get_tensor_ne.restype = ctypes.POINTER(ctypes.c_int64)
        _gguf.lib = lib
    return _gguf.lib


def read_directions(path: str) -> dict[int, np.ndarray]:
    """layer -> its direction vector (several tensors for one layer add up, as llama.cpp reads them)."""
    lib = _gguf()
    ctx = lib.gguf_init_from_file(path.encode(), _GgufInitParams(True, None))
    if not ctx:
        raise ControlVectorError(f"failed to read control vector {path}: not a readable GGUF file")
    try:
        data_offset = lib.gguf_get_data_offset(ctx)
        found: list[tuple[int, int, int]] = []  # layer, file offset, n_embd
        for i in range(lib.gguf_get_n_tensors(ctx)):
            name = lib.gguf_get_tensor_name(ctx, i).decode("utf-8", "replace")
            m = _DIRECTION.fullmatch(name)
            if not m:
                raise ControlVectorError(f"control vector {path}: tensor '{name}' is not named direction.<layer>")
            layer = int(m.group(1))
            if layer == 0:
                raise ControlVectorError(f"control vector {path}: direction.0 is not allowed (layers count from 1)")
            if lib.gguf_get_tensor_type(ctx, i) != GGML_TYPE_F32:
                raise ControlVectorError(f"control vector {path}: tensor '{name}' is not f32")
            ne = lib.gguf_get_tensor_ne(ctx, i)
            if any(ne[d] != 1 for d in range(1, GGML_MAX_DIMS)):
                raise ControlVectorError(f"control vector {path}: tensor '{name}' is not one vector")
            found.append((layer, data_offset + lib.gguf_get_tensor_offset(ctx, i), ne[0]))
    finally:
        lib.gguf_free(ctx)
    if not found:
        raise ControlVectorError(f"control vector {path} has no direction tensors")
    sizes = {n for _, _, n in found}
    if len(sizes) != 1:
        raise ControlVectorError(f"control vector {path}: direction tensors of different lengths {sorted(sizes)}")
    out: dict[int, np.ndarray] = {}
    with open(path, "rb") as fh:
        for layer, offset, n in found:
            fh.seek(offset)
            vec = np.frombuffer(fh.read(4 * n), dtype="<f4")
            if len(vec) != n:
                raise ControlVectorError(f"control vector {path} is truncated")
            out[layer] = out[layer] + vec if layer in out else vec.astype(np.float32)
    return out


def combine(specs: list[LoraSpec], n_embd: int) -> np.ndarray:
    """The scaled sum of every file, as one array: layer 1's vector first, n_embd floats a layer."""
    total = np.zeros(0, dtype=np.float32)
    for spec in specs:
        directions = read_directions(spec.path)
        size = len(next(iter(directions.values())))
        if size != n_embd:
            raise ControlVectorError(
                f"control vector {spec.path} has vectors of {size} values, but the model's n_embd is {n_embd}")
        needed = max(directions) * n_embd
        if len(total) < needed:
            total = np.concatenate([total, np.zeros(needed - len(total), dtype=np.float32)])
        for layer, vec in directions.items():
            total[(layer - 1) * n_embd:layer * n_embd] += np.float32(spec.scale) * vec
    return total


def apply_control_vectors(ctx, model, specs: list[LoraSpec], layers: tuple[int, int] | None) -> np.ndarray | None:
    """Load, sum and apply the control vectors to the context; returns the array applied."""
    if not specs:
        return None
    n_embd = ll.llama_model_n_embd(model)
    n_layer = ll.llama_model_n_layer(model)
    data = combine(specs, n_embd)
    # as llama-server: a start or end of 0 (or none) means the first layer with a direction, or the last
    start, end = layers or (0, 0)
    start = start if start > 0 else 1
    end = end if end > 0 else n_layer
    ptr = data.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    if ll.llama_set_adapter_cvec(ctx, ptr, len(data), n_embd, start, end) != 0:
        raise ControlVectorError("libllama refused the control vectors (see the log)")
    log.info("control vectors applied: %s, layers %d-%d",
             ", ".join(f"{s.path} x {s.scale:g}" for s in specs), start, end)
    return data
