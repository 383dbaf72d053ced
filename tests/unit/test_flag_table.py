"""Every option and spelling of llama-server's --help parses exactly, and lands in Config, in the
options accepted without effect, or stops start-up naming the capability it needs.

llama_server_options.json is taken from the vendored llama.cpp's common/arg.cpp by
tools/extract_llama_server_options.py: rerun it on a new llama.cpp and this test shows what is new.
"""

import json
import pathlib

import pytest

from llamaserve.cli.children import value_of
from llamaserve.cli.flags import BY_NAME, FLAGS
from llamaserve.cli.parse import SECRET_FLAGS, UsageError, build_config
from llamaserve.config import Config

TABLE = json.loads((pathlib.Path(__file__).parent / "llama_server_options.json").read_text())["options"]
SPELLINGS = [(o, name) for o in TABLE for name in o["names"] + o["negatives"]]
N_VALUES = {"none": 0, "bool": 0, "int": 1, "string": 1, "string_string": 2}


def test_the_table_is_llama_servers():
    assert (len(TABLE), len(SPELLINGS)) == (255, 412)


@pytest.mark.parametrize("option", TABLE, ids=lambda o: o["names"][0])
def test_each_option_is_one_flag_with_llama_servers_shape(option):
    flags = {id(BY_NAME[name][0]) for name in option["names"] + option["negatives"] if name in BY_NAME}
    missing = [name for name in option["names"] + option["negatives"] if name not in BY_NAME]
    assert not missing, f"not accepted: {missing}"
    assert len(flags) == 1, "the spellings of one option must be one flag"
    flag = BY_NAME[option["names"][0]][0]
    assert all(BY_NAME[n][1] for n in option["negatives"]) and not any(BY_NAME[n][1] for n in option["names"])
    assert flag.n_values == N_VALUES[option["kind"]]
    if option["env"]:
        assert flag.env == option["env"]


def _sample_values(flag, tmp_path):
    """A value the flag accepts: the first candidate its parser takes."""
    text_file = tmp_path / "value.json"
    text_file.write_text('{"type": "object"}')
    candidates = ["1", "0.5", "on", "yarn", "layer", "distribute", "mmap", "f16", "mean", "deepseek", "15043+1",
                  "0-1", "ff", "KEY=int:1", r"blk\..*=CPU", '{"a": 1}', "top_k;temperature", "none", str(text_file),
                  str(tmp_path), "a,b"]
    if flag.pair:
        return ["1", "2"]
    for candidate in candidates:
        try:
            flag.parse(candidate)
        except Exception:
            continue
        return [candidate]
    raise AssertionError(f"no sample value for {flag.names}")


def _outcome(argv):
    """The Config a command line makes, or that it is refused."""
    try:
        return build_config(argv, {})[0]
    except UsageError:
        return UsageError


def test_a_preset_is_overridden_by_the_options_after_it():
    config, _ = build_config(["-c", "100", "--fim-qwen-1.5b-default", "--port", "9000"], {})
    assert (config.hf_repo, config.hf_file, config.n_ctx, config.port, config.cache_reuse) == (
        "ggml-org/Qwen2.5-Coder-1.5B-Q8_0-GGUF", "qwen2.5-coder-1.5b-q8_0.gguf", 0, 9000, 256)
    assert config.notices == []  # an option given over a preset's is no repetition


@pytest.mark.parametrize("option, spelling", SPELLINGS, ids=[s for _, s in SPELLINGS])
def test_each_spelling_parses_and_lands(option, spelling, tmp_path):
    flag, negative = BY_NAME[spelling]
    if flag.expands:  # a preset is its options, given in its place
        assert _outcome([spelling]) == _outcome(list(flag.expands))
        return
    values = [] if flag.parse is None else _sample_values(flag, tmp_path)
    argv = [spelling, *values]
    if flag.removed:
        with pytest.raises(UsageError, match="removed"):
            build_config(argv, {})
        return
    expected = (not negative) if flag.parse is None else flag.parse(*values)
    if flag.needs and (flag.asks is None or flag.asks(expected)):
        with pytest.raises(UsageError) as exc:
            build_config(argv, {})
        assert flag.needs in str(exc.value) and spelling in str(exc.value)
        return
    config, commands = build_config(argv, {})
    if flag.command:
        assert commands == [flag.command]
        return
    if flag.needs:  # a value that asks for nothing missing: nothing to do, nothing to announce
        assert flag.long_name not in config.ignored
        return
    assert value_of(config, flag.key) == ("***" if flag.long_name in SECRET_FLAGS and flag.noop else expected)
    if flag.noop:
        assert config.ignored[flag.long_name] in (expected, "***")
        assert any(spelling in n and flag.noop in n for n in config.notices)


@pytest.mark.parametrize("spelling", sorted({s for _, s in SPELLINGS if s.startswith("--") and "-" in s[2:]}))
def test_long_names_read_underscores_as_dashes(spelling, tmp_path):
    flag, _ = BY_NAME[spelling]
    if flag.removed or flag.needs or flag.command or flag.expands:
        return
    values = [] if flag.parse is None else _sample_values(flag, tmp_path)
    underscored = "--" + spelling[2:].replace("-", "_")
    a, _ = build_config([spelling, *values], {})
    b, _ = build_config([underscored, *values], {})
    assert value_of(a, flag.key) == value_of(b, flag.key)


@pytest.mark.parametrize("argv", [["-hx"], ["--por", "80"], ["--ctx", "10"], ["-ngl99"], ["--port=8080"], ["-cb1"],
                                  ["-c"], ["--control-vector-layer-range", "1"]])
def test_no_prefixes_no_clusters_no_missing_values(argv):
    with pytest.raises(UsageError):
        build_config(argv, {})


def test_short_forms_that_argparse_misread():
    # argparse read -hf as -h f, -ag as -a g, -mg as -m g
    config, commands = build_config(["-hf", "ggml-org/gemma-3-1b-it-GGUF"], {})
    assert (config.hf_repo, config.router_mode, config.model_alias, commands) == ("ggml-org/gemma-3-1b-it-GGUF", False, "ggml-org/gemma-3-1b-it-GGUF", [])
    config, commands = build_config(["-mg", "1", "-a", "x"], {})
    assert (config.main_gpu, config.model, config.alias, commands) == (1, "", "x", [])


def test_environment_names_and_their_no_twins():
    config, _ = build_config([], {"LLAMA_ARG_NO_CONTEXT_SHIFT": "1", "LLAMA_ARG_SWA_FULL": "1", "LLAMA_ARG_TAGS": "a,b",
                                  "LLAMA_ARG_NO_WARMUP": "1"})
    assert (config.ctx_shift, config.swa_full, config.tags) == (False, True, ["a", "b"])
    config, _ = build_config(["--context-shift"], {"LLAMA_ARG_NO_CONTEXT_SHIFT": "1"})
    assert config.ctx_shift  # the command line wins
    config, _ = build_config([], {"LLAMA_ARG_SWA_FULL": "0"})
    assert not config.swa_full  # a plain switch is only turned on by its variable
    with pytest.raises(UsageError, match="LLAMA_ARG_DOCKER_REPO"):  # a capability not built stops start-up from the environment too
        build_config([], {"LLAMA_ARG_DOCKER_REPO": "ai/smollm2"})
    config, _ = build_config([], {"LLAMA_ARG_RPC": "127.0.0.1:50052,[::1]:50053"})
    assert config.rpc_servers == ["127.0.0.1:50052", "[::1]:50053"]
    config, _ = build_config([], {"LLAMA_ARG_MMPROJ": "p.gguf", "LLAMA_ARG_NO_MMPROJ_OFFLOAD": "1"})
    assert (config.mmproj_path, config.mmproj_offload) == ("p.gguf", False)
    config, _ = build_config([], {"LLAMA_ARG_CACHE_RAM": "1024", "LLAMA_ARG_NO_CACHE_IDLE_SLOTS": "1",
                                  "LLAMA_ARG_KV_UNIFIED_PER_SLOT": "512"})
    assert (config.cache_ram, config.cache_idle_slots, config.kv_unified_per_slot) == (1024, False, 512)


def test_defaults_of_the_new_options_are_llama_servers():
    c = Config()
    assert (c.swa_full, c.warmup, c.kv_offload, c.op_offload, c.check_tensors, c.sampling.cache_prompt) == (False, True, True, True, False, True)
    assert (c.poll, c.priority, c.cpu_strict, c.sse_ping_interval, c.verbosity, c.escape, c.special) == (50, 0, False, 30, 3, True, False)
    assert (c.yarn_ext_factor, c.yarn_attn_factor, c.yarn_beta_slow, c.yarn_beta_fast, c.rope_freq_base) == (-1.0, -1.0, -1.0, -1.0, 0.0)
    assert (c.cache_ram, c.cache_idle_slots, c.kv_unified_per_slot) == (8192, True, 0)


def test_every_flag_of_the_table_is_reachable():
    # no two flags share a spelling (a later one would hide an earlier one)
    seen = {}
    for flag in FLAGS:
        for name in flag.names + flag.negatives:
            assert name not in seen, f"{name} is spelled by two flags"
            seen[name] = flag


def _reason_rows(kind: str) -> list[str]:
    """The README table rows for one kind (noop or needs): the options of each reason, in table order."""
    groups: dict[str, list[str]] = {}
    for f in FLAGS:
        reason = getattr(f, kind).removeprefix("has no effect: ")
        if reason:
            groups.setdefault(reason, []).append(f"`{f.long_name}`")
    return [f"| {', '.join(names)} | {reason} |" for reason, names in groups.items()]


def _table(readme: str, header: str) -> list[str]:
    start = readme.index(header)
    return readme[start:readme.index("\n\n", start)].splitlines()[2:]


def test_readme_tables_say_what_the_flag_table_says():
    # a flag that starts acting leaves the table; one whose reason changes changes it there too
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    noop = [row for row in _table(readme, "| options | why they have no effect |") if "on a CPU-only build" not in row]
    assert noop == _reason_rows("noop"), "\n".join(_reason_rows("noop"))
    assert _table(readme, "| options | what they need |") == _reason_rows("needs"), "\n".join(_reason_rows("needs"))


def test_readme_lists_every_option_without_effect_or_not_built():
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Command line"):readme.index("**AMX note.**")]
    unlisted = [f.long_name for f in FLAGS if (f.noop or f.needs)
                and not any(f"`{n}`" in section for n in f.names + f.negatives)
                and not (f.long_name.endswith("-batch") and f"`{f.long_name[:-6]}`" in section)]
    assert not unlisted, f"README's Command line section does not name: {unlisted}"
