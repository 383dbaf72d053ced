"""The pure parts of --rpc: endpoints, the layer split read from libllama's load log, the message of a
build without RPC."""

from __future__ import annotations

import pytest

from llamaserve.cli.parse import UsageError, build_config
from llamaserve.engine import placement, rpc


@pytest.mark.parametrize("text, want", [
    ("127.0.0.1:50052", ("127.0.0.1", 50052)),
    ("gpu-box:1", ("gpu-box", 1)),
    ("[::1]:50053", ("::1", 50053)),
])
def test_endpoints(text, want):
    assert rpc.parse_endpoint(text) == want


@pytest.mark.parametrize("text", ["127.0.0.1", ":50052", "host:port", "host:0", "host:70000", ""])
def test_bad_endpoints_are_refused_at_the_command_line(text):
    with pytest.raises(ValueError):
        rpc.parse_endpoint(text)
    with pytest.raises(UsageError, match="--rpc"):
        build_config(["--rpc", f"127.0.0.1:50052,{text}" if text else ","], {})


def test_a_build_without_rpc_says_how_to_get_one(monkeypatch):
    monkeypatch.setattr(rpc, "available", lambda: False)
    with pytest.raises(UsageError, match='--rpc: this llama-cpp-python was built without .*CMAKE_ARGS="-DGGML_RPC=ON" pip install'):
        build_config(["--rpc", "127.0.0.1:50052"], {})


def test_gpu_options_act_with_rpc_servers():
    """-ngl and -ts place layers on the RPC servers' devices, so they are not 'no effect on a CPU build'."""
    config, _ = build_config(["--rpc", "127.0.0.1:50052,127.0.0.1:50053", "-ngl", "20", "-ts", "3,1"], {})
    assert config.rpc_servers == ["127.0.0.1:50052", "127.0.0.1:50053"]
    assert config.n_gpu_layers == 20 and config.tensor_split == [3.0, 1.0]
    assert "--tensor-split" not in config.ignored and not any("no GPU backend" in n for n in config.notices)


LOAD_LOG = """\
load_tensors: loading model tensors, this can take a while... (mmap = true, direct_io = false)
load_tensors: layer   0 assigned to device RPC0, is_swa = 0
load_tensors: layer   1 assigned to device RPC0, is_swa = 0
load_tensors: layer   2 assigned to device RPC1, is_swa = 0
load_tensors: layer   3 assigned to device CPU, is_swa = 0
load_tensors: offloading output layer to GPU
load_tensors: offloaded 3/4 layers to GPU
load_tensors:   CPU_Mapped model buffer size =    12.50 MiB
load_tensors: RPC0[127.0.0.1:50052] model buffer size =    40.00 MiB
load_tensors: RPC1[127.0.0.1:50053] model buffer size =    20.25 MiB
""".splitlines()


def test_the_layer_split_is_read_from_the_load_log():
    lines = [line for line in LOAD_LOG if placement.wanted(line)]
    assert len(lines) == 8  # the layer lines, the count and the buffers; not the chatter around them
    p = placement.parse(lines)
    assert p.layers == {"RPC0": 2, "RPC1": 1, "CPU": 1}
    assert p.offloaded == (3, 4)
    assert p.buffers_mib == {"CPU_Mapped": 12.5, "RPC0[127.0.0.1:50052]": 40.0, "RPC1[127.0.0.1:50053]": 20.25}
    described = {"RPC0": "127.0.0.1:50052", "RPC1": "127.0.0.1:50053", "CPU": "CPU"}
    assert p.summary(described) == ("layers by device: RPC0 (127.0.0.1:50052) 2, RPC1 (127.0.0.1:50053) 1, CPU 1; "
                                   "offloaded 3/4")
    assert p.to_json(described)["layers"][0] == {"device": "RPC0", "description": "127.0.0.1:50052", "n_layers": 2}
