"""Model, context and thread options reach libllama and act, checked on the real model: load mode,
metadata and tensor overrides, devices, RoPE, control vectors, warmup, thread placement, NUMA."""

from __future__ import annotations

import ctypes
import logging
import os
import re
import resource
import subprocess
import sys
import threading

import gguf
import llama_cpp.llama_cpp as ll
import numpy as np
import pytest

from llamaserve.config import Config, LoraSpec
from llamaserve.engine import model as model_module
from llamaserve.engine import threads
from llamaserve.engine.devices import cpu_buffer_type
from llamaserve.engine.model import Model, ModelLoadError
from llamaserve.engine.model_params import LOAD_MODES, TensorBuftOverride, build_model_params, kv_override, load_mode
from tests.conftest import MODEL

PROMPT = "The capital of France is"


def config(**options) -> Config:
    return Config(model=MODEL, n_ctx=512, n_parallel=1, n_threads=options.pop("n_threads", 1), **options)


class Loaded:
    """A Model that is closed when the with-block ends, whatever the test asserted."""

    def __init__(self, **options):
        self.options = options

    def __enter__(self) -> Model:
        self.model = Model(config(**self.options))
        return self.model

    def __exit__(self, *exc):
        self.model.close()


def greedy(model: Model, prompt: str = PROMPT, n: int = 8) -> list[int]:
    tokens = model.tokenize(prompt)
    out: list[int] = []
    for _ in range(n):
        arr = (ll.llama_token * len(tokens))(*tokens)  # kept alive while libllama reads it
        assert ll.llama_decode(model.ctx, ll.llama_batch_get_one(arr, len(tokens))) == 0
        logits = np.ctypeslib.as_array(ll.llama_get_logits_ith(model.ctx, -1), shape=(model.n_vocab,))
        tokens = [int(logits.argmax())]
        out.append(tokens[0])
    ll.llama_memory_clear(model.memory, True)
    return out


def greedy_with(**options) -> list[int]:
    with Loaded(**options) as model:
        return greedy(model)


@pytest.fixture(scope="module")
def reference() -> list[int]:
    return greedy_with()


@pytest.fixture
def engine_log():
    """Every record of the engine logger, libllama's own lines included (they are debug records)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    logger = logging.getLogger("llamaserve.engine")
    level, verbose = logger.level, model_module._llama_log.verbose
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    model_module._init_backend(False)  # installs the callback before we make it verbose
    model_module._llama_log.verbose = True
    yield lambda: [r.getMessage() for r in records]
    model_module._llama_log.verbose = verbose
    logger.removeHandler(handler)
    logger.setLevel(level)


# --- load mode (--no-mmap, --mlock, -lm, -lzm) ---

@pytest.mark.parametrize("options, mode", [
    ({}, "auto"), ({"use_mmap": False}, "none"), ({"use_mlock": True}, "mmap+mlock"),
    ({"use_mmap": False, "use_mlock": True}, "mlock"), ({"load_mode": "mmap", "use_mmap": False}, "mmap"),
    ({"load_mode": "dio"}, "dio"),
])
def test_no_mmap_and_mlock_choose_the_load_mode(options, mode):
    assert load_mode(Config(**options)) == LOAD_MODES[mode]


def _mappings_of_model() -> int:
    with open("/proc/self/maps") as fh:
        return sum(1 for line in fh if line.rstrip().endswith(MODEL))


def test_no_mmap_reads_the_file_instead_of_mapping_it():
    before = _mappings_of_model()
    with Loaded(warmup=False) as model:
        assert model.model_params.load_mode == LOAD_MODES["auto"]
        assert _mappings_of_model() > before
    with Loaded(warmup=False, use_mmap=False) as model:
        assert model.model_params.params.load_mode == LOAD_MODES["none"]
        assert _mappings_of_model() == before


def _locked_kib() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmLck"))


def test_mlock_locks_the_weights_in_memory():
    size_kib = os.path.getsize(MODEL) // 1024
    before = _locked_kib()
    with Loaded(warmup=False, use_mlock=True, lazy_mode="off") as model:
        assert model.model_params.load_mode == LOAD_MODES["mmap+mlock"]
        assert model.model_params.lazy_mode == 0
        locked = _locked_kib() - before
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if os.geteuid() != 0 and soft != resource.RLIM_INFINITY and soft < size_kib * 1024:
        pytest.skip("RLIMIT_MEMLOCK is below the model's size: libllama can only warn")
    assert locked > size_kib // 2


# --- metadata overrides, context parameters ---

def test_override_kv_changes_the_model():
    with Loaded(kv_overrides=["llama.context_length=int:1024"]) as model:
        assert model.n_ctx_train == 1024
    with Loaded() as model:
        assert model.n_ctx_train == 8192


def test_override_kv_values_become_libllama_structs():
    assert (kv_override("a.b=int:-7").tag, kv_override("a.b=int:-7").value.val_i64) == (0, -7)
    assert kv_override("x=float:0.5").value.val_f64 == 0.5
    assert (kv_override("x=bool:true").tag, kv_override("x=bool:true").value.val_bool) == (2, True)
    assert (kv_override("x=str:hello").tag, kv_override("x=str:hello").value.val_str) == (3, b"hello")
    params = build_model_params(config(kv_overrides=["a=int:1", "b=str:z"]))
    arr = ctypes.cast(params.params.kv_overrides, ctypes.POINTER(ll.llama_model_kv_override))
    assert [arr[i].key for i in range(3)] == [b"a", b"b", b""]  # ended by an empty key
    with pytest.raises(ModelLoadError, match="bool"):
        Model(config(kv_overrides=["x=bool:maybe"]))


def test_rope_options_change_the_output(reference):
    assert greedy_with(rope_freq_base=10.0) != reference
    assert greedy_with(rope_scaling="linear", rope_freq_scale=0.25) != reference
    yarn = {"rope_scaling": "yarn", "rope_freq_scale": 0.25, "yarn_orig_ctx": 8192}
    assert greedy_with(**yarn, yarn_ext_factor=1.0) != greedy_with(**yarn, yarn_ext_factor=0.0)
    assert greedy_with(rope_scaling="none") == reference  # this model has no scaling of its own


def test_context_flags_reach_the_context_params(engine_log):
    with Loaded(warmup=False, swa_full=True, kv_offload=False, op_offload=False, rope_freq_base=5000.0,
                yarn_beta_fast=16.0, rope_scaling="yarn") as model:
        c = model.context_params
        assert c.swa_full and not c.offload_kqv and not c.op_offload
        assert (c.rope_scaling_type, c.rope_freq_base, c.yarn_beta_fast) == (2, 5000.0, 16.0)
    assert any("freq_base" in m and "= 5000.0" in m for m in engine_log())  # what the context says it uses
    with Loaded(warmup=False) as model:
        c = model.context_params
        assert not c.swa_full and c.offload_kqv and c.op_offload and c.rope_scaling_type == -1  # llama-server's defaults


# --- devices and tensor buffer overrides ---

def test_device_none_and_tensor_overrides_to_cpu_load(engine_log, reference):
    with Loaded(devices=["none"]) as model:
        assert model.model_params.devices == []
        assert model.model_params.params.devices  # a list with only its NULL end: no offload device
        assert greedy(model) == reference
    with Loaded(tensor_overrides=[r"blk\..*=CPU"], warmup=False) as model:
        assert greedy(model) == reference
    overridden = [m for m in engine_log() if "buffer type overridden to" in m]
    assert overridden and all(" blk." in m for m in overridden)


def test_n_cpu_ffn_overrides_the_feed_forward_weights_of_the_first_layers(engine_log):
    with Loaded(n_cpu_ffn=2, cpu_moe=True, warmup=False) as model:
        patterns = [p for p, _ in model.model_params.tensor_overrides]
        assert patterns[0] == r"\.ffn_(up|down|gate|gate_up)_(ch|)exps"  # --cpu-moe: no experts in this model
        arr = ctypes.cast(model.model_params.params.tensor_buft_overrides, ctypes.POINTER(TensorBuftOverride))
        assert [arr[i].buft for i in range(3)] == [cpu_buffer_type()] * 3 and arr[3].pattern is None
    names = sorted(re.search(r"tensor (\S+) .*buffer type overridden to", m).group(1)
                   for m in engine_log() if "buffer type overridden to" in m)
    assert names == sorted(f"blk.{i}.ffn_{w}.weight" for i in (0, 1) for w in ("up", "down", "gate"))


def test_unknown_device_or_buffer_type_names_the_known_ones():
    with pytest.raises(ModelLoadError, match=r"--device CUDA7 is not a known device; available devices: "):
        Model(config(devices=["CUDA7"]))
    with pytest.raises(ModelLoadError, match=r"the CPU, not an offload device"):
        Model(config(devices=["CPU"]))
    with pytest.raises(ModelLoadError, match=r"unknown buffer type 'CUDA0'.*available buffer types: .*CPU"):
        Model(config(tensor_overrides=["blk=CUDA0"]))


# --- control vectors ---

N_EMBD, N_LAYER = 576, 30  # SmolLM2-135M


def write_control_vector(path, layers, scale=1.0, n_embd=N_EMBD, seed=0) -> str:
    writer = gguf.GGUFWriter(str(path), "controlvector")
    writer.add_string("controlvector.model_hint", "llama")
    writer.add_uint32("controlvector.layer_count", len(layers))
    rng = np.random.default_rng(seed)
    for layer in layers:
        writer.add_tensor(f"direction.{layer}", (scale * rng.standard_normal(n_embd)).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return str(path)


def test_control_vectors_steer_the_output(tmp_path, reference):
    cv = write_control_vector(tmp_path / "cv.gguf", range(1, N_LAYER))
    assert greedy_with(control_vectors=[LoraSpec(cv, 0.0)]) == reference
    assert greedy_with(control_vectors=[LoraSpec(cv, 8.0)]) != reference
    # files add up with their scales: the same directions at +8 and -8 cancel
    neg = write_control_vector(tmp_path / "neg.gguf", range(1, N_LAYER), scale=-1.0)
    assert greedy_with(control_vectors=[LoraSpec(cv, 8.0), LoraSpec(neg, 8.0)]) == reference
    # the layer range limits them: no layer past the model's last gets anything
    assert greedy_with(control_vectors=[LoraSpec(cv, 8.0)], control_vector_layers=(N_LAYER + 1, N_LAYER + 5)) == reference


def test_bad_control_vectors_stop_the_load(tmp_path):
    small = write_control_vector(tmp_path / "small.gguf", [1, 2], n_embd=100)
    with pytest.raises(ModelLoadError, match=r"vectors of 100 values, but the model's n_embd is 576"):
        Model(config(control_vectors=[LoraSpec(small, 1.0)]))
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file")
    with pytest.raises(ModelLoadError, match=r"failed to read control vector .*junk.gguf"):
        Model(config(control_vectors=[LoraSpec(str(junk), 1.0)]))
    zero = write_control_vector(tmp_path / "zero.gguf", [0, 1])
    with pytest.raises(ModelLoadError, match=r"direction.0"):
        Model(config(control_vectors=[LoraSpec(zero, 1.0)]))


# --- warmup ---

def test_warmup_runs_once_and_leaves_no_state(engine_log, reference):
    with Loaded() as model:
        assert model.warmed_up
        assert ll.llama_memory_seq_pos_max(model.memory, 0) == -1
        assert greedy(model) == reference
    assert sum(m.startswith("warmup: decoded 2 token(s)") for m in engine_log()) == 1
    with Loaded(warmup=False) as model:
        assert not model.warmed_up
        assert greedy(model) == reference
    assert sum(m.startswith("warmup:") for m in engine_log()) == 1


# --- thread pools (-C, -Cr, --cpu-strict, --prio, --poll) ---

def test_threadpool_params_match_ggml_struct():
    # ggml_threadpool_params_init writes the whole struct: exactly our layout's bytes, not one more
    size = ctypes.sizeof(threads.GgmlThreadpoolParams)
    buf = (ctypes.c_ubyte * (size + 64))(*([0xAB] * (size + 64)))
    threads._bind().base.ggml_threadpool_params_init(ctypes.cast(buf, ctypes.POINTER(threads.GgmlThreadpoolParams)), 3)
    last_written = max(i for i in range(len(buf)) if buf[i] != 0xAB)
    assert size - 4 < last_written + 1 <= size
    p = threads.PoolSpec(3, frozenset({1, 5}), True, -1, 7).params()
    assert (p.n_threads, p.prio, p.poll, p.strict_cpu, p.paused) == (3, -1, 7, True, False)
    assert [i for i in range(threads.GGML_MAX_N_THREADS) if p.cpumask[i]] == [1, 5]


def test_cpu_masks_and_ranges_parse_as_llama_server():
    assert threads.parse_cpu_mask("0x13") == {0, 1, 4}  # the rightmost digit holds CPUs 0-3
    assert threads.parse_cpu_mask("F0") == {4, 5, 6, 7}
    assert threads.parse_cpu_range("2-4") == {2, 3, 4}
    assert threads.parse_cpu_range("-1") == {0, 1}
    assert threads.parse_cpu_range("510-") == {510, 511}
    gen, batch = threads.pool_specs(Config(cpu_mask="1", cpu_range="3-3", priority=-1, poll_batch=0), 2, 4)
    assert (gen.cpus, gen.priority, gen.poll) == ({0, 3}, -1, 50)
    assert (batch.cpus, batch.priority, batch.poll, batch.n_threads) == ({0, 3}, -1, 0, 4)
    with pytest.raises(threads.ThreadpoolError):
        threads.parse_cpu_mask("xyz")


def _threads() -> dict[int, tuple[frozenset[int], int, int]]:
    """Each thread of this process: the CPUs it may run on, its scheduling policy, its nice value."""
    out = {}
    for tid in map(int, os.listdir("/proc/self/task")):
        try:
            out[tid] = (frozenset(os.sched_getaffinity(tid)), os.sched_getscheduler(tid), os.getpriority(os.PRIO_PROCESS, tid))
        except OSError:  # gone meanwhile
            pass
    return out


def compute_threads(**options) -> tuple[int, dict[int, tuple[frozenset[int], int, int]]]:
    """Load and decode on a fresh thread (as the scheduler does); returns that thread's id and the
    threads that appeared meanwhile (it and ggml's OpenMP workers), read while they still exist."""
    before = set(_threads())
    box: dict = {}
    decoded, release = threading.Event(), threading.Event()

    def body():
        try:
            with Loaded(warmup=False, **options) as model:
                box["tid"] = threading.get_native_id()
                one = (ll.llama_token * 1)(model.info.bos)  # one small graph: threads sharing a CPU spin slowly
                assert ll.llama_decode(model.ctx, ll.llama_batch_get_one(one, 1)) == 0
                decoded.set()
                release.wait(30)
        except BaseException as exc:  # noqa: BLE001 - reported below
            box["error"] = exc
            decoded.set()

    worker = threading.Thread(target=body)
    worker.start()
    decoded.wait(60)
    seen = {tid: v for tid, v in _threads().items() if tid not in before}
    release.set()
    worker.join(30)
    if "error" in box:
        raise box["error"]
    return box["tid"], seen


def _two_cpus() -> tuple[int, int]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    return cpus[0], cpus[-1]


def test_cpu_mask_pins_the_compute_threads():
    lo, hi = _two_cpus()
    tid, seen = compute_threads(n_threads=2, cpu_mask=format(1 << hi, "x"))
    assert len(seen) >= 2 and tid in seen  # the decoding thread and an OpenMP worker
    assert all(cpus == {hi} for cpus, _, _ in seen.values())
    tid, seen = compute_threads(n_threads=2, cpu_mask=format(1 << lo | 1 << hi, "x"), cpu_strict=True)
    assert seen[tid][0] == {lo}  # strict: thread 0 takes the mask's first CPU, the next thread the next one
    assert {cpus for cpus, _, _ in seen.values()} == {frozenset({lo}), frozenset({hi})}


def test_one_thread_pool_pins_the_decoding_thread():
    # a one-thread graph runs on the caller, where ggml applies nothing: the engine does it
    _, hi = _two_cpus()
    tid, seen = compute_threads(n_threads=1, cpu_range=f"{hi}-{hi}")
    assert seen[tid][0] == {hi}


def test_low_priority_reaches_the_compute_threads():
    tid, seen = compute_threads(n_threads=2, priority=-1)
    assert len(seen) >= 2
    assert all(policy == os.SCHED_BATCH and nice == 5 for _, policy, nice in seen.values())
    assert os.sched_getscheduler(0) == os.SCHED_OTHER and os.getpriority(os.PRIO_PROCESS, 0) == 0  # this thread untouched


def test_default_thread_options_attach_no_pool():
    with Loaded(warmup=False) as model:
        assert model.threadpools is None
    with Loaded(warmup=False, poll=0) as model:
        assert model.threadpools is not None and model.threadpools.pool and model.threadpools.pool_batch is None


# --- NUMA ---

def test_numa_is_initialised_once_before_the_model():
    # NUMA state is process-wide in ggml: try it in a process of its own
    script = (
        "from llamaserve.config import Config\n"
        "from llamaserve.engine.model import Model\n"
        "from llamaserve.engine import numa\n"
        f"m = Model(Config(model={MODEL!r}, n_ctx=512, n_parallel=1, n_threads=1, numa='distribute'))\n"
        "m.close()\n"
        f"m = Model(Config(model={MODEL!r}, n_ctx=512, n_parallel=1, n_threads=1, numa='isolate'))\n"
        "m.close()\n"
        "print('strategy', numa.init_numa.strategy)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "strategy distribute" in out.stdout
