"""Config → llama_model_params and llama_context_params, as llama-server fills them.

The model params point at C arrays (metadata overrides, devices, tensor buffer overrides, the
tensor split); ModelParams owns them, and the model keeps its ModelParams for as long as it
lives, because libllama may read them after loading (tensor overrides are consulted again for
each context).
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass, field

import llama_cpp.llama_cpp as ll

from llamaserve.config import Config
from llamaserve.engine import devices as ggml_devices
from llamaserve.engine.cpu_features import use_extra_buffer_types
from llamaserve.errors import ServerError

# enum llama_load_mode, llama_lazy_mode, llama_split_mode, llama_rope_scaling_type (llama.h)
LOAD_MODES = {"auto": -1, "none": 0, "mmap": 1, "mlock": 2, "mmap+mlock": 3, "dio": 4}
LAZY_MODES = {"off": 0, "auto": 1, "on": 2}
SPLIT_MODES = {"none": 0, "layer": 1, "row": 2, "tensor": 3}
ROPE_SCALING = {"": -1, "none": 0, "linear": 1, "yarn": 2}
# enum llama_model_kv_override_type
KV_INT, KV_FLOAT, KV_BOOL, KV_STR = 0, 1, 2, 3

# The tensor names llama.cpp's --cpu-moe / --n-cpu-moe / --n-cpu-ffn keep on the CPU (common.h):
# expert FFN weights, and dense FFN weights of one block.
FFN_EXPERTS = r"\.ffn_(up|down|gate|gate_up)_(ch|)exps"
FFN_DENSE = r"\.ffn_(up|down|gate)\."


class ParamError(ServerError):
    """A model or context parameter that cannot be used; model.py raises it as ModelLoadError."""


class TensorBuftOverride(ctypes.Structure):
    """struct llama_model_tensor_buft_override (llama.h)."""

    _fields_ = [("pattern", ctypes.c_char_p), ("buft", ctypes.c_void_p)]


def load_mode(config: Config) -> int:
    """-lm wins; left at auto, the older --no-mmap / --mlock spellings decide."""
    if config.load_mode not in LOAD_MODES:
        raise ParamError(f"invalid load mode '{config.load_mode}' ({', '.join(LOAD_MODES)})")
    if config.load_mode != "auto":
        return LOAD_MODES[config.load_mode]
    if config.use_mlock:
        return LOAD_MODES["mmap+mlock" if config.use_mmap else "mlock"]
    if not config.use_mmap:
        return LOAD_MODES["none"]
    return LOAD_MODES["auto"]


def kv_override(item: str) -> ll.llama_model_kv_override:
    """One --override-kv KEY=TYPE:VALUE as libllama's struct."""
    key, eq, rest = item.partition("=")
    kind, colon, value = rest.partition(":")
    if not (key and eq and colon):
        raise ParamError(f"invalid --override-kv '{item}' (KEY=TYPE:VALUE)")
    raw = key.encode()
    if len(raw) >= 128:
        raise ParamError(f"--override-kv key too long (127 bytes at most): '{key}'")
    kvo = ll.llama_model_kv_override()
    kvo.key = raw
    try:
        if kind == "int":
            kvo.tag, kvo.value.val_i64 = KV_INT, int(value)
        elif kind == "float":
            kvo.tag, kvo.value.val_f64 = KV_FLOAT, float(value)
        elif kind == "bool":
            if value not in ("true", "false"):
                raise ValueError
            kvo.tag, kvo.value.val_bool = KV_BOOL, value == "true"
        elif kind == "str":
            data = value.encode()
            if len(data) > 127:
                raise ParamError(f"--override-kv value too long (127 bytes at most): '{item}'")
            kvo.tag, kvo.value.val_str = KV_STR, data
        else:
            raise ParamError(f"invalid --override-kv type '{kind}' in '{item}' (int, float, bool or str)")
    except ValueError:
        raise ParamError(f"invalid {kind} value in --override-kv '{item}'") from None
    return kvo


def offload_device_handles(names: list[str]) -> list[int]:
    """-dev: [] = every device (NULL list); ["none"] = none; else the named devices, in order."""
    if names == ["none"]:
        return []
    out = []
    for name in names:
        dev = ggml_devices.find_offload_device(name)
        if dev is None:
            available = [d.name for d in ggml_devices.offload_devices()]
            # the CPU is no offload device: it holds whatever is not offloaded (llama-server refuses it too)
            what = "is the CPU, not an offload device" if name.lower() == "cpu" else "is not a known device"
            raise ParamError(
                f"--device {name} {what}; available devices: "
                + (", ".join(available) if available else "none (this build offloads to no device; -dev none is accepted)"))
        out.append(dev.handle)
    return out


def tensor_override_patterns(config: Config) -> list[tuple[str, str]]:
    """(pattern, buffer type name) in the order libllama should try them: -ot first, then the
    CPU-MoE / CPU-FFN shortcuts (the first pattern that matches a tensor wins)."""
    out = []
    for item in config.tensor_overrides:
        pattern, eq, buft = item.partition("=")
        if not (pattern and eq and buft):
            raise ParamError(f"invalid --override-tensor '{item}' (<tensor name pattern>=<buffer type>)")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ParamError(f"invalid tensor name pattern '{pattern}': {exc}") from None
        out.append((pattern, buft))
    if config.cpu_moe:
        out.append((FFN_EXPERTS, "CPU"))
    for i in range(max(0, config.n_cpu_moe)):
        out.append((rf"blk\.{i}{FFN_EXPERTS}", "CPU"))
    for i in range(max(0, config.n_cpu_ffn)):
        out.append((rf"blk\.{i}{FFN_DENSE}", "CPU"))
    return out


@dataclass
class ModelParams:
    """A filled llama_model_params and the C arrays it points to."""

    params: ll.llama_model_params
    kv_overrides: list[str] = field(default_factory=list)
    devices: list[int] | None = None  # None = libllama's default (every device)
    tensor_overrides: list[tuple[str, str]] = field(default_factory=list)
    _keep: list = field(default_factory=list, repr=False)

    @property
    def load_mode(self) -> int:
        return self.params.load_mode

    @property
    def lazy_mode(self) -> int:
        return self.params.lazy_mode


def build_model_params(config: Config, progress=None) -> ModelParams:
    mp = ll.llama_model_default_params()
    mp.n_gpu_layers = config.n_gpu_layers if config.n_gpu_layers >= 0 else 999
    mp.load_mode = load_mode(config)
    if config.lazy_mode not in LAZY_MODES:
        raise ParamError(f"invalid lazy mode '{config.lazy_mode}' ({', '.join(LAZY_MODES)})")
    mp.lazy_mode = LAZY_MODES[config.lazy_mode]
    if config.split_mode not in SPLIT_MODES:
        raise ParamError(f"invalid split mode '{config.split_mode}' ({', '.join(SPLIT_MODES)})")
    mp.split_mode = SPLIT_MODES[config.split_mode]
    mp.main_gpu = config.main_gpu
    mp.check_tensors = config.check_tensors
    mp.no_host = config.no_host
    mp.use_extra_bufts = use_extra_buffer_types(config.repack)
    if progress is not None:
        mp.progress_callback = progress
    out = ModelParams(mp)
    keep = out._keep

    if config.tensor_split:
        n_max = ll.llama_max_devices()
        if len(config.tensor_split) > n_max:
            raise ParamError(f"--tensor-split has {len(config.tensor_split)} values, libllama takes at most {n_max}")
        split = (ctypes.c_float * n_max)(*config.tensor_split)
        keep.append(split)
        mp.tensor_split = split

    if config.kv_overrides:
        arr = (ll.llama_model_kv_override * (len(config.kv_overrides) + 1))()  # zeroed: last key is empty
        for i, item in enumerate(config.kv_overrides):
            arr[i] = kv_override(item)
        keep.append(arr)
        mp.kv_overrides = arr
        out.kv_overrides = list(config.kv_overrides)

    if config.devices:
        handles = offload_device_handles(config.devices)
        arr = (ctypes.c_void_p * (len(handles) + 1))(*handles)  # NULL-terminated
        keep.append(arr)
        mp.devices = ctypes.addressof(arr)
        out.devices = handles

    patterns = tensor_override_patterns(config)
    if patterns:
        known = ggml_devices.buffer_types()
        arr = (TensorBuftOverride * (len(patterns) + 1))()  # zeroed: last pattern is NULL
        for i, (pattern, name) in enumerate(patterns):
            if name not in known:
                raise ParamError(f"unknown buffer type '{name}' in --override-tensor; available buffer types: "
                                 + ", ".join(sorted(known)))
            raw = ctypes.create_string_buffer(pattern.encode())
            keep.append(raw)
            arr[i].pattern = ctypes.cast(raw, ctypes.c_char_p)
            arr[i].buft = known[name]
        keep.append(arr)
        mp.tensor_buft_overrides = ctypes.addressof(arr)
        out.tensor_overrides = patterns
    return out


def apply_context_params(cparams: ll.llama_context_params, config: Config) -> None:
    """The RoPE / YaRN, SWA and offload fields of llama_context_params (0 or -1 = the model's own)."""
    if config.rope_scaling not in ROPE_SCALING:
        raise ParamError(f"invalid --rope-scaling '{config.rope_scaling}' (none, linear or yarn)")
    cparams.rope_scaling_type = ROPE_SCALING[config.rope_scaling]
    cparams.rope_freq_base = config.rope_freq_base
    cparams.rope_freq_scale = config.rope_freq_scale
    cparams.yarn_orig_ctx = config.yarn_orig_ctx
    cparams.yarn_ext_factor = config.yarn_ext_factor
    cparams.yarn_attn_factor = config.yarn_attn_factor
    cparams.yarn_beta_slow = config.yarn_beta_slow
    cparams.yarn_beta_fast = config.yarn_beta_fast
    cparams.swa_full = config.swa_full
    cparams.offload_kqv = config.kv_offload
    cparams.op_offload = config.op_offload
