"""ggml's devices and buffer types, read through libggml itself (llama-cpp-python binds neither)."""

from __future__ import annotations

import ctypes
import pathlib
from dataclasses import dataclass

import llama_cpp
import llama_cpp.llama_cpp as ll

_LIB_DIR = pathlib.Path(llama_cpp.__file__).parent / "lib"
DEVICE_TYPES = {0: "CPU", 1: "GPU", 2: "iGPU", 3: "ACCEL"}  # enum ggml_backend_dev_type


def loaded_library(name: str) -> ctypes.CDLL:
    """The copy of lib<name> that libllama itself uses.

    The wheel ships each ggml library twice (libggml-base.so and libggml-base.so.0 are separate
    files, not links) and libllama loads the .so.0 ones by soname. Opening the other file would
    map a second copy with its own device registry and its own CPU buffer type object, so
    handles from it would mean nothing to libllama. So open the file already mapped.
    """
    prefix = f"lib{name}.so"
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                path = line.rstrip("\n").split(" ")[-1]
                p = pathlib.Path(path)
                if p.parent == _LIB_DIR and (p.name == prefix or p.name.startswith(prefix + ".")):
                    return ctypes.CDLL(path)
    except OSError:
        pass
    for candidate in (_LIB_DIR / f"{prefix}.0", _LIB_DIR / prefix):
        if candidate.exists():
            return ctypes.CDLL(str(candidate))
    return ctypes.CDLL(prefix)


def _ggml() -> ctypes.CDLL:
    if not hasattr(_ggml, "lib"):
        lib = loaded_library("ggml")
        base = loaded_library("ggml-base")
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
        base.ggml_backend_cpu_buffer_type.restype = ctypes.c_void_p
        base.ggml_backend_cpu_buffer_type.argtypes = []
        base.ggml_version.restype = ctypes.c_char_p
        base.ggml_commit.restype = ctypes.c_char_p
        _ggml.lib, _ggml.base = lib, base
    return _ggml.lib


def ggml_libraries() -> tuple[ctypes.CDLL, ctypes.CDLL]:
    """(libggml, libggml-base) as libllama uses them, with the device functions typed."""
    return _ggml(), _ggml.base


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


def descriptions() -> dict[str, str]:
    """Device name -> description (an RPC device's is its server's host:port)."""
    return {d.name: d.description for d in devices()}


def offload_devices() -> list[Device]:
    """The devices -dev may name: every device but the CPU, which always holds what is not offloaded."""
    return [d for d in devices() if d.kind != "CPU"]


def find_offload_device(name: str) -> Device | None:
    # ggml compares device names without regard to case (ggml_backend_dev_by_name), so -dev cuda0 works
    for d in offload_devices():
        if d.name.lower() == name.lower():
            return d
    return None


def buffer_types() -> dict[str, int]:
    """Each device's default buffer type by its name ("CPU", "CUDA0", ...): the names -ot accepts."""
    _ggml()
    base = _ggml.base
    out: dict[str, int] = {}
    for d in devices():
        buft = base.ggml_backend_dev_buffer_type(d.handle)
        if buft:
            out.setdefault(base.ggml_backend_buft_name(buft).decode(), buft)
    return out


def cpu_buffer_type() -> int:
    """The CPU buffer type libllama compares tensor overrides with (overrides to it may repack weights)."""
    _ggml()
    return _ggml.base.ggml_backend_cpu_buffer_type()


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
