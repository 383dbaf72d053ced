"""Router-mode options: its flags, the flags it passes on to children, and --models-preset INI files."""

import json

import pytest

from llamaserve.cli import parse_args, read_models_preset


def test_router_flags_and_defaults(tmp_path):
    c = parse_args([], environ={})
    assert (c.models_dir, c.models_preset, c.models_max, c.models_autoload, c.models_default, c.models_idle_ttl) == (
        "", "", 4, True, "", 0.0)
    c = parse_args(["--models-dir", str(tmp_path), "--models-max", "0", "--no-models-autoload",
                    "--models-idle-ttl", "2.5"], environ={})
    assert (c.models_dir, c.models_max, c.models_autoload, c.models_idle_ttl) == (str(tmp_path), 0, False, 2.5)
    env = {"LLAMA_ARG_MODELS_MAX": "2", "LLAMA_ARG_MODELS_AUTOLOAD": "0", "LLAMA_ARG_MODELS_IDLE_TTL": "60"}
    c = parse_args([], environ=env)
    assert (c.models_max, c.models_autoload, c.models_idle_ttl) == (2, False, 60.0)


def test_children_inherit_the_command_line_not_the_router_options(tmp_path):
    c = parse_args(["-c", "512", "-np", "1", "--temp", "0", "--no-mmap", "--port", "9000", "--host", "0.0.0.0",
                    "--chat-template-kwargs", '{"a": 1}', "--models-dir", str(tmp_path), "--models-max", "1"],
                   environ={"LLAMA_ARG_THREADS": "3"})
    flags = c.child_flags
    assert flags["n_ctx"] == ["--ctx-size", "512"] and flags["n_parallel"] == ["--parallel", "1"]
    assert flags["sampling.temperature"] == ["--temp", "0.0"] and flags["use_mmap"] == ["--no-mmap"]
    assert json.loads(flags["chat_template_kwargs"][1]) == {"a": 1}
    # the router decides host, port and model for each child; router options stay with the router;
    # LLAMA_ARG_* variables reach the children through the environment
    assert not {"host", "port", "models_dir", "models_max", "n_threads"} & set(flags)
    # what the router passes on parses back to the same values
    tokens = [t for v in flags.values() for t in v]
    back = parse_args(tokens, environ={})
    assert (back.n_ctx, back.n_parallel, back.sampling.temperature, back.use_mmap, back.chat_template_kwargs) == (
        512, 1, 0.0, False, {"a": 1})


def test_children_get_the_ops_flags(tmp_path):
    c = parse_args(["--metrics", "--props", "--slot-save-path", str(tmp_path), "-r", "User:", "-r", "Q:"], environ={})
    flags = c.child_flags
    assert flags["endpoint_metrics"] == ["--metrics"] and flags["endpoint_props"] == ["--props"]
    back = parse_args([t for v in flags.values() for t in v], environ={})
    assert (back.endpoint_metrics, back.endpoint_props, back.slot_save_path) == (True, True, str(tmp_path))
    assert back.sampling.stop == ["User:", "Q:"]


def write(tmp_path, text: str) -> str:
    path = tmp_path / "models.ini"
    path.write_text(text)
    return str(path)


def test_preset_sections_keys_and_spellings(tmp_path):
    presets = read_models_preset(write(tmp_path, """
version = 1
; global section
[*]
c = 4096
LLAMA_ARG_N_PARALLEL = 2

[big]
model = /models/big.gguf
alias = large, huge
ctx-size = 8192
no-mmap = true
cont-batching = false
temp = 0.5   ; inline comment
load-on-startup = true
stop-timeout = 3
host = 0.0.0.0
"""))
    assert set(presets) == {"*", "big"}
    assert presets["*"].flags == {"n_ctx": ["--ctx-size", "4096"], "n_parallel": ["--parallel", "2"]}
    big = presets["big"]
    assert (big.model, big.aliases, big.load_on_startup, big.stop_timeout) == ("/models/big.gguf", ("large", "huge"), True, 3.0)
    assert big.flags == {"n_ctx": ["--ctx-size", "8192"], "use_mmap": ["--no-mmap"],
                         "cont_batching": ["--no-cont-batching"], "sampling.temperature": ["--temp", "0.5"]}


@pytest.mark.parametrize("text, fragment", [
    ("[m]\nno-such-option = 1\n", "unknown option"),
    ("[m]\nc = lots\n", "invalid integer"),
    ("[m]\njinja = perhaps\n", "invalid boolean"),
    ("c = 1\n[m]\n", "inside a [section]"),
    ("[m\n", "models preset"),
])
def test_bad_presets_are_rejected_with_the_place(tmp_path, text, fragment):
    with pytest.raises(ValueError) as exc:
        read_models_preset(write(tmp_path, text))
    assert fragment in str(exc.value)


def test_router_startup_errors(tmp_path, capsys):
    for argv, fragment in [
        (["--models-dir", str(tmp_path / "missing")], "not a directory"),
        (["--models-preset", str(tmp_path / "missing.ini")], "missing.ini"),
        (["--models-default", "nope"], "nope"),
        (["--models-preset", write(tmp_path, "[orphan]\nc = 1\n")], "orphan"),
        (["--models-idle-ttl", "-1"], "seconds"),
    ]:
        with pytest.raises(SystemExit) as exc:
            parse_args(argv, environ={})
        assert exc.value.code == 2
        assert fragment in capsys.readouterr().err
