"""Model and context options reach libllama: load mode, metadata overrides, RoPE, warmup."""

import ctypes

import llama_cpp.llama_cpp as ll
import pytest

from llamaserve.config import Config, bundled_model_path
from llamaserve.engine.model import Model, load_mode

MODEL = str(bundled_model_path())


def load(**options) -> Model:
    return Model(Config(model=MODEL, n_ctx=256, n_parallel=1, n_threads=1, **options))


def greedy(model: Model, prompt: str, n: int = 8) -> list[int]:
    tokens = model.tokenize(prompt)
    out = []
    arr = (ll.llama_token * len(tokens))(*tokens)  # kept alive while libllama reads it
    batch = ll.llama_batch_get_one(arr, len(tokens))
    for _ in range(n):
        assert ll.llama_decode(model.ctx, batch) == 0
        logits = ll.llama_get_logits_ith(model.ctx, -1)
        best = max(range(model.n_vocab), key=lambda t: logits[t])
        out.append(best)
        arr = (ll.llama_token * 1)(best)
        batch = ll.llama_batch_get_one(arr, 1)
    ll.llama_memory_clear(model.memory, True)
    return out


@pytest.mark.parametrize("options, mode", [
    ({}, "auto"), ({"use_mmap": False}, "none"), ({"use_mlock": True}, "mmap+mlock"),
    ({"use_mmap": False, "use_mlock": True}, "mlock"), ({"load_mode": "mmap", "use_mmap": False}, "mmap"),
])
def test_no_mmap_and_mlock_choose_the_load_mode(options, mode):
    assert load_mode(Config(**options)) == mode


def test_load_mode_and_flags_reach_the_model_params():
    model = load(use_mmap=False, check_tensors=True, swa_full=True, kv_offload=False)
    try:
        assert model.load_params["load_mode"] == 0 and model.load_params["check_tensors"]
        assert model.load_params["swa_full"] and not model.load_params["offload_kqv"]
    finally:
        model.close()


def test_override_kv_changes_the_model():
    model = load(kv_overrides=["llama.context_length=int:1024"])
    try:
        assert model.n_ctx_train == 1024
    finally:
        model.close()


def test_rope_frequency_base_changes_the_output():
    base = load()
    try:
        reference = greedy(base, "The capital of France is")
    finally:
        base.close()
    changed = load(rope_freq_base=10.0)
    try:
        assert greedy(changed, "The capital of France is") != reference
    finally:
        changed.close()


def test_warmup_leaves_the_cache_empty():
    model = load()
    try:
        assert ll.llama_memory_seq_pos_max(model.memory, 0) == -1
    finally:
        model.close()
