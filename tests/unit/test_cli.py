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
    assert (c.cont_batching, c.endpoint_slots, c.ctx_shift, c.sampling.n_keep, c.cache_reuse) == (False, False, True, 5, 16)
    assert (c.n_gpu_layers, c.flash_attn, c.cache_type_k, c.cache_type_v, c.unified_kv) == (0, "off", "q8_0", "q8_0", True)
    assert (c.use_mmap, c.use_mlock, c.timeout, c.threads_http, c.verbose) == (False, True, 30, 4, True)


def test_environment_variables_and_precedence():
    env = {"LLAMA_ARG_CTX_SIZE": "512", "LLAMA_ARG_N_PARALLEL": "2", "LLAMA_ARG_CONTEXT_SHIFT": "true",
           "LLAMA_ARG_ENDPOINT_SLOTS": "0", "LLAMA_ARG_FLASH_ATTN": "on", "LLAMA_ARG_PORT": "9000"}
    c = parse(env=env)
    assert (c.n_ctx, c.n_parallel, c.ctx_shift, c.endpoint_slots, c.flash_attn, c.port) == (512, 2, True, False, "on", 9000)
    assert parse("-c", "2048", env=env).n_ctx == 2048  # the command line wins


def test_prompt_chunk_flag():
    assert parse().prompt_chunk == 0  # auto: chosen by the engine once it knows where the layers run
    assert parse("--prompt-chunk", "128").prompt_chunk == 128


@pytest.mark.parametrize("argv", [
    ["--bogus"], ["-np", "0"], ["-c", "abc"], ["-fa", "maybe"], ["-ctk", "q3_weird"], ["--port", "70000"],
    ["--top-p", "1.5"], ["-b", "0"], ["--pooling", "max"], ["--embd-normalize", "-2"], ["--prompt-chunk", "-1"],
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


def test_access_and_limit_flags(tmp_path):
    keyfile = tmp_path / "keys.txt"
    keyfile.write_text("# ops keys\nsk-file-1\n\n  sk-file-2  \r\n")
    c = parse("--api-key", "sk-a,sk-b", "--api-key", '"sk,c"', "--api-key-file", str(keyfile),
              "--cors-origins", "localhost", "--no-cors-credentials", "--max-body-size", "64K", "--max-queue", "3",
              "--max-prompts", "8", "--max-n-probs", "5", "--shutdown-grace", "2.5")
    assert c.api_keys == ["sk-a", "sk-b", "sk,c", "sk-file-1", "sk-file-2"]
    assert (c.cors_origins, c.cors_credentials, c.cors_methods, c.cors_headers) == ("localhost", False, "GET, POST, DELETE, OPTIONS", "*")
    assert (c.max_body_size, c.max_queue, c.max_prompts, c.max_n_probs, c.shutdown_grace) == (65536, 3, 8, 5, 2.5)
    d = parse()
    assert (d.api_keys, d.cors_origins, d.cors_credentials, d.max_body_size, d.max_queue) == ([], "*", True, 32 << 20, 0)
    assert parse(env={"LLAMA_API_KEY": "k1,k2"}).api_keys == ["k1", "k2"]
    assert parse("--max-body-size", "2M").max_body_size == 2 << 20
    # router mode (no -m) guards its routes with the same keys
    assert parse_args(["--api-key-file", str(keyfile)], environ={}).api_keys == ["sk-file-1", "sk-file-2"]


@pytest.mark.parametrize("argv", [["--max-body-size", "lots"], ["--max-body-size", "0"], ["--max-queue", "-1"],
                                  ["--max-prompts", "0"], ["--shutdown-grace", "-1"]])
def test_bad_limit_flags(argv, capsys):
    with pytest.raises(SystemExit):
        parse(*argv)
    assert capsys.readouterr().err


def test_bad_api_key_file(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse("--api-key-file", str(tmp_path / "missing.txt"))
    assert "missing.txt" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(SystemExit):
        parse("--api-key-file", str(empty))
    assert "no keys" in capsys.readouterr().err


def test_tls_files_are_checked_up_front(tmp_path, capsys):
    from tests.conftest import self_signed_cert

    cert, key = self_signed_cert(tmp_path)
    c = parse("--ssl-cert-file", cert, "--ssl-key-file", key)
    assert c.tls and (c.ssl_cert_file, c.ssl_key_file) == (cert, key)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    (tmp_path / "other").mkdir()
    other_key = self_signed_cert(tmp_path / "other")[1]
    for argv, fragment in [
        (["--ssl-cert-file", cert], "both"),
        (["--ssl-key-file", key], "both"),
        (["--ssl-cert-file", cert, "--ssl-key-file", str(tmp_path / "nope.pem")], "not found"),
        (["--ssl-cert-file", cert, "--ssl-key-file", str(garbage)], "cannot use TLS"),
        (["--ssl-cert-file", str(garbage), "--ssl-key-file", key], "cannot use TLS"),
        (["--ssl-cert-file", cert, "--ssl-key-file", other_key], "cannot use TLS"),  # a key that does not match
    ]:
        with pytest.raises(SystemExit) as exc:
            parse(*argv)
        assert exc.value.code != 0
        assert fragment in capsys.readouterr().err, argv
def test_webui_switch():
    assert parse().webui is True
    assert parse("--no-webui").webui is False and parse("--no-ui").webui is False
    assert parse("--webui", env={"LLAMA_ARG_UI": "off"}).webui is True  # the command line wins
    assert parse(env={"LLAMA_ARG_UI": "0"}).webui is False


def test_reasoning_budget_flags(capsys):
    c = parse("--reasoning-budget", "64", "--reasoning-budget-message", "Time's up.")
    assert (c.reasoning_budget, c.reasoning_budget_message) == (64, "Time's up.")
    assert "enable_thinking" not in c.chat_template_kwargs
    assert parse("--reasoning-budget", "0").chat_template_kwargs["enable_thinking"] is False
    with pytest.raises(SystemExit):
        parse("--reasoning-budget", "-2")
    assert "reasoning-budget" in capsys.readouterr().err


def _adapter(tmp_path, name="a.gguf"):
    path = tmp_path / name
    path.write_bytes(b"GGUF" + bytes(60))  # the command line checks only that it is a GGUF file
    return str(path)


def test_lora_flags(tmp_path):
    from llamaserve.config import LoraSpec

    a, b, c = _adapter(tmp_path, "a.gguf"), _adapter(tmp_path, "b.gguf"), _adapter(tmp_path, "c:d.gguf")
    assert parse().lora == [] and parse().lora_init_without_apply is False
    # --lora and --lora-scaled fill one list in command-line order: an adapter's id is its place
    conf = parse("--lora", a, "--lora-scaled", f"{b}:0.5,{c}:-1.25", "--lora", f"{a},{b}", "--lora-init-without-apply")
    assert conf.lora == [LoraSpec(a, 1.0), LoraSpec(b, 0.5), LoraSpec(c, -1.25), LoraSpec(a, 1.0), LoraSpec(b, 1.0)]
    assert conf.lora_init_without_apply is True


@pytest.mark.parametrize("argv, fragment", [
    (["--lora", "/nonexistent/x.gguf"], "LoRA adapter file not found: /nonexistent/x.gguf"),
    (["--lora-scaled", "{a}"], "FNAME:SCALE"),
    (["--lora-scaled", "{a}:"], "invalid number"),
    (["--lora-scaled", "{a}:x"], "invalid number"),
    (["--lora-scaled", "{a}:nan"], "finite"),
    (["--lora-scaled", "{a}:inf"], "finite"),
    (["--lora-scaled", ":1"], "FNAME:SCALE"),
    (["--lora", "{text}"], "not a GGUF LoRA adapter file"),
    (["--lora", ""], "expected a LoRA adapter file"),
])
def test_bad_lora_flags_exit_non_zero(tmp_path, capsys, argv, fragment):
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    argv = [arg.format(a=_adapter(tmp_path), text=text) for arg in argv]
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
    assert fragment in capsys.readouterr().err


def test_router_passes_lora_flags_to_children(tmp_path):
    from llamaserve.cli import read_models_preset

    a, b = _adapter(tmp_path, "a.gguf"), _adapter(tmp_path, "with,comma.gguf")
    c = parse_args(["--lora", a, "--lora-scaled", f'"{b}:0.5"', "--lora-init-without-apply"], environ={})
    assert c.router_mode
    flags = c.child_flags
    assert flags["lora"] == ["--lora-scaled", f"{a}:1.0", "--lora-scaled", f'"{b}:0.5"']
    assert flags["lora_init_without_apply"] == ["--lora-init-without-apply"]
    back = parse_args(["-m", MODEL] + [t for v in flags.values() for t in v], environ={})
    assert (back.lora, back.lora_init_without_apply) == (c.lora, True)
    # in a preset, --lora and --lora-scaled keys add up, as on the command line
    ini = tmp_path / "models.ini"
    ini.write_text(f"[m]\nmodel = {MODEL}\nlora = {a}\nlora-scaled = {a}:0.25\nlora-init-without-apply = true\n")
    preset = read_models_preset(str(ini))["m"]
    assert preset.flags["lora"] == ["--lora", a, "--lora-scaled", f"{a}:0.25"]
    assert parse_args(["-m", MODEL, *preset.flags["lora"]], environ={}).lora[1].scale == 0.25


def test_ops_flags(tmp_path, capsys):
    c = parse()
    assert (c.endpoint_metrics, c.endpoint_props, c.slot_save_path, c.sampling.stop) == (False, False, "", [])
    c = parse("--metrics", "--props", "--slot-save-path", str(tmp_path), "-r", "User:", "--reverse-prompt", "\n\n")
    assert (c.endpoint_metrics, c.endpoint_props, c.slot_save_path) == (True, True, str(tmp_path))
    assert c.sampling.stop == ["User:", "\n\n"]
    c = parse(env={"LLAMA_ARG_ENDPOINT_METRICS": "1", "LLAMA_ARG_ENDPOINT_PROPS": "true"})
    assert (c.endpoint_metrics, c.endpoint_props) == (True, True)
    with pytest.raises(SystemExit):
        parse("--slot-save-path", str(tmp_path / "missing"))
    assert "not a directory" in capsys.readouterr().err


def test_sleep_and_proxy_flags(capsys):
    assert (parse().sleep_idle_seconds, parse().ui_mcp_proxy) == (-1, False)
    assert parse("--sleep-idle-seconds", "30").sleep_idle_seconds == 30
    assert parse("--sleep-idle-seconds", "-1").sleep_idle_seconds == -1
    assert parse("--webui-mcp-proxy").ui_mcp_proxy and not parse("--ui-mcp-proxy", "--no-ui-mcp-proxy").ui_mcp_proxy
    assert parse(env={"LLAMA_ARG_UI_MCP_PROXY": "1"}).ui_mcp_proxy
    for bad in ("0", "-5"):  # 0 would sleep between any two requests
        with pytest.raises(SystemExit) as exc:
            parse("--sleep-idle-seconds", bad)
        assert exc.value.code == 2
        assert "or -1 (never)" in capsys.readouterr().err


def test_vertex_variables():
    assert parse(env={"AIP_HTTP_PORT": "9000"}).predict_route == ""  # nothing without AIP_MODE=PREDICTION
    c = parse("--port", "8081", env={"AIP_MODE": "PREDICTION"})
    assert (c.predict_route, c.predict_health_route, c.port) == ("/predict", "", 8080)  # AIP_HTTP_PORT's default wins
    assert any("AIP_HTTP_PORT=8080 overrides the port 8081" in n for n in c.notices)
    c = parse(env={"AIP_MODE": "PREDICTION", "AIP_PREDICT_ROUTE": "v1/predict", "AIP_HEALTH_ROUTE": "/hc", "AIP_HTTP_PORT": "7000"})
    assert (c.predict_route, c.predict_health_route, c.port) == ("/v1/predict", "/hc", 7000)


def test_a_bad_vertex_port_exits(capsys):
    with pytest.raises(SystemExit) as exc:
        parse(env={"AIP_MODE": "PREDICTION", "AIP_HTTP_PORT": "http"})
    assert exc.value.code == 2 and "AIP_HTTP_PORT" in capsys.readouterr().err


def test_reasoning_tags_and_backend_sampling_flags():
    # -rea reaches the template as enable_thinking (auto: the template's own choice)
    assert parse("-rea", "off").chat_template_kwargs["enable_thinking"] is False
    assert parse("--reasoning", "on").chat_template_kwargs["enable_thinking"] is True
    assert "enable_thinking" not in parse("-rea", "auto").chat_template_kwargs
    c = parse("--reasoning-preserve", "--skip-chat-parsing", "--tags", "b,a")
    assert (c.reasoning_preserve, c.skip_chat_parsing, c.tags) == (True, True, ["b", "a"])
    assert parse("--no-reasoning-preserve").reasoning_preserve is False
    # -bs cannot act (CPU sampler chains): accepted, announced once with its reason, listed in /props
    c = parse("-bs")
    assert c.ignored == {"--backend-sampling": True}
    assert [n for n in c.notices if "-bs" in n and "CPU sampler chains" in n]


def test_agent_turns_on_every_tool_and_the_proxy_unless_they_are_given():
    from llamaserve.cli.parse import build_config

    config, _ = build_config(["--agent"], {})
    assert (config.tools, config.ui_mcp_proxy, config.cors_origins) == (["all"], True, "localhost")
    config, _ = build_config(["--agent", "--tools", "read_file", "--no-ui-mcp-proxy"], {})
    assert (config.tools, config.ui_mcp_proxy) == (["read_file"], False)
    config, _ = build_config([], {"LLAMA_ARG_AGENT": "1"})
    assert config.tools == ["all"]
    config, _ = build_config(["--no-agent"], {})
    assert (config.tools, config.ui_mcp_proxy) == ([], False)
