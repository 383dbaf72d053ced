"""llama-server's flags, short forms and LLAMA_ARG_* variables → Config."""

import pytest

from llamaserve.cli import parse_args
from llamaserve.config import bundled_model_path

MODEL = str(bundled_model_path())


def parse(*argv, env=None):
    return parse_args(["-m", MODEL, *argv], environ=env or {})


def test_defaults_match_llama_server():
    c = parse()
    assert (c.host, c.port, c.n_parallel, c.slots, c.unified_kv) == ("127.0.0.1", 8080, -1, 4, True)
    assert (c.n_ctx, c.n_batch, c.n_ubatch, c.ctx_shift, c.cont_batching, c.endpoint_slots) == (0, 2048, 512, False, True, True)
    assert c.slot_prompt_similarity == pytest.approx(0.1)
    assert c.sampling.temperature == pytest.approx(0.8) and c.sampling.seed == 0xFFFFFFFF


def test_short_and_long_forms():
    c = parse("-np", "3", "-c", "1024", "-b", "256", "-ub", "128", "-t", "2", "-tb", "1", "-n", "64", "-a", "m",
              "--temp", "0.5", "--top-k", "10", "--top-p", "0.5", "--min-p", "0.1", "-s", "7", "-nocb", "--no-slots",
              "--context-shift", "--keep", "5", "--cache-reuse", "16", "-sps", "0.5", "-ngl", "0", "-fa", "off",
              "-ctk", "q8_0", "-ctv", "q8_0", "--kv-unified", "--no-mmap", "--mlock", "-to", "30", "--threads-http", "4", "-v")
    assert (c.n_parallel, c.slots, c.n_ctx, c.n_batch, c.n_ubatch, c.n_threads, c.n_threads_batch) == (3, 3, 1024, 256, 128, 2, 1)
    assert (c.sampling.n_predict, c.alias, c.sampling.temperature, c.sampling.top_k, c.sampling.seed) == (64, "m", 0.5, 10, 7)
    assert (c.cont_batching, c.endpoint_slots, c.ctx_shift, c.n_keep, c.cache_reuse) == (False, False, True, 5, 16)
    assert (c.n_gpu_layers, c.flash_attn, c.cache_type_k, c.cache_type_v, c.unified_kv) == (0, "off", "q8_0", "q8_0", True)
    assert (c.use_mmap, c.use_mlock, c.timeout, c.threads_http, c.verbose) == (False, True, 30, 4, True)


def test_environment_variables_and_precedence():
    env = {"LLAMA_ARG_CTX_SIZE": "512", "LLAMA_ARG_N_PARALLEL": "2", "LLAMA_ARG_CONTEXT_SHIFT": "true",
           "LLAMA_ARG_ENDPOINT_SLOTS": "0", "LLAMA_ARG_FLASH_ATTN": "on", "LLAMA_ARG_PORT": "9000"}
    c = parse(env=env)
    assert (c.n_ctx, c.n_parallel, c.ctx_shift, c.endpoint_slots, c.flash_attn, c.port) == (512, 2, True, False, "on", 9000)
    assert parse("-c", "2048", env=env).n_ctx == 2048  # the command line wins


@pytest.mark.parametrize("argv", [
    ["--bogus"], ["-np", "0"], ["-c", "abc"], ["-fa", "maybe"], ["-ctk", "q3_weird"], ["--port", "70000"],
    ["--top-p", "1.5"], ["-b", "0"], ["--pooling", "max"], ["--embd-normalize", "-2"],
])
def test_bad_flags_exit_non_zero(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code != 0
    assert capsys.readouterr().err


def test_embedding_flags():
    c = parse()
    assert (c.embedding_mode, c.pooling_type, c.embd_normalize, c.spm_infill) == (False, "", 2, False)
    c = parse("--embeddings", "--pooling", "CLS", "--embd-normalize", "-1", "--spm-infill")
    assert (c.embedding, c.embedding_mode, c.pooling_type, c.embd_normalize, c.spm_infill) == (True, True, "cls", -1, True)
    assert parse("--embedding").embedding_mode
    c = parse("--rerank", "--pooling", "mean")  # reranking means rank pooling
    assert (c.reranking, c.embedding_mode, c.pooling_type) == (True, True, "rank")
    assert parse("--reranking").embedding_mode
    c = parse(env={"LLAMA_ARG_EMBEDDINGS": "1", "LLAMA_ARG_POOLING": "last"})
    assert (c.embedding_mode, c.pooling_type) == (True, "last")
    assert parse(env={"LLAMA_ARG_RERANKING": "true"}).pooling_type == "rank"


def test_bad_env_value_exits(capsys):
    with pytest.raises(SystemExit):
        parse(env={"LLAMA_ARG_CONTEXT_SHIFT": "perhaps"})
    assert "LLAMA_ARG_CONTEXT_SHIFT" in capsys.readouterr().err


def test_missing_and_invalid_model_files(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_args(["-m", str(tmp_path / "nope.gguf")], environ={})
    assert "nope.gguf" in capsys.readouterr().err
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model")
    with pytest.raises(SystemExit):
        parse_args(["-m", str(junk)], environ={})
    assert "junk.gguf" in capsys.readouterr().err


def test_without_a_model_it_is_a_router_over_the_bundled_model():
    from llamaserve.router.catalog import Catalog

    config = parse_args([], environ={})
    assert config.router_mode and config.model == ""
    catalog = Catalog.build(config)
    assert catalog.resolve(catalog.default).path == MODEL
    assert not parse_args([], environ={"LLAMA_ARG_MODEL": MODEL}).router_mode


def test_webui_switch():
    assert parse().webui is True
    assert parse("--no-webui").webui is False and parse("--no-ui").webui is False
    assert parse("--webui", env={"LLAMA_ARG_UI": "off"}).webui is True  # the command line wins
    assert parse(env={"LLAMA_ARG_UI": "0"}).webui is False
