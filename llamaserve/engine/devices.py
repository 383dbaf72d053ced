"""ggml's devices and buffer types, read through libggml itself (llama-cpp-python binds neither)."""

from __future__ import annotations

import ctypes
import pathlib
from dataclasses import dataclass

import llama_cpp
import llama_cpp.llama_cpp as ll

_LIB_DIR = pathlib.Path(llama_cpp.__file__).parent / "lib"
DEVICE_TYPES = {0: "CPU", 1: "GPU", 2: "iGPU", 3: "ACCEL"}  # enum ggml_backend_dev_type


def _ggml() -> ctypes.CDLL:
    if not hasattr(_ggml, "lib"):
        lib = ctypes.CDLL(str(_LIB_DIR / "libggml.so"))
        base = ctypes.CDLL(str(_LIB_DIR / "libggml-base.so"))
        lib.ggml_backend_dev_count.restype = ctypes.c_size_t
        lib.ggml_backend_dev_get.restype = ctypes.c_void_p
        lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
        for name in ("ggml_backend_dev_name", "ggml_backend_dev_description"):
            getattr(base, name).restype = ctypes.c_char_p
            getattr(base, name).argtypes = [ctypes.c_void_p]
        base.ggml_backend_dev_type.restype = ctypes.c_int
        base.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
        base.ggml_backend_dev_memory.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t)]
        base.ggml_backend_dev_buffer_type.restype = ctypes.c_void_p
        base.ggml_backend_dev_buffer_type.argtypes = [ctypes.c_void_p]
        base.ggml_backend_buft_name.restype = ctypes.c_char_p
        base.ggml_backend_buft_name.argtypes = [ctypes.c_void_p]
        base.ggml_version.restype = ctypes.c_char_p
        base.ggml_commit.restype = ctypes.c_char_p
        _ggml.lib, _ggml.base = lib, base
    return _ggml.lib


@dataclass(frozen=True)
class Device:
    handle: int
    name: str
    description: str
    kind: str  # CPU, GPU, iGPU, ACCEL
    memory_free: int
    memory_total: int
    buffer_type: str


def devices() -> list[Device]:
    """Every device ggml knows, the CPU included, in ggml's order."""
    lib = _ggml()
    base = _ggml.base
    out = []
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        base.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        buft = base.ggml_backend_dev_buffer_type(dev)
        out.append(Device(
            handle=dev,
            name=base.ggml_backend_dev_name(dev).decode(),
            description=base.ggml_backend_dev_description(dev).decode("utf-8", "replace"),
            kind=DEVICE_TYPES.get(base.ggml_backend_dev_type(dev), "?"),
            memory_free=free.value,
            memory_total=total.value,
            buffer_type=base.ggml_backend_buft_name(buft).decode() if buft else "",
        ))
    return out


def gpu_offload_supported() -> bool:
    return bool(ll.llama_supports_gpu_offload())


def build_info() -> dict[str, str]:
    """What this process runs on: llama-cpp-python's version, ggml's version and commit, libllama's system info."""
    _ggml()
    base = _ggml.base
    return {
        "llama_cpp_python": llama_cpp.__version__,
        "ggml_version": base.ggml_version().decode(),
        "ggml_commit": base.ggml_commit().decode(),
        "system_info": ll.llama_print_system_info().decode("utf-8", "replace").strip(),
    }
