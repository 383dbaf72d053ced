"""llama-server's command line (flags, short forms, LLAMA_ARG_* variables) → Config."""

from __future__ import annotations

import argparse
import configparser
import csv
import io
import json
import math
import os
import pathlib
import ssl
import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from llamaserve.config import KV_CACHE_TYPES, POOLING_TYPES, Config, LoraSpec, ModelPreset, SamplingDefaults

TRUTHY = {"on", "enabled", "true", "1"}
FALSEY = {"off", "disabled", "false", "0"}


def _int(text: str) -> int:
    try:
        return int(text, 0) if text.lower().startswith(("0x", "-0x")) else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer value: '{text}'") from None


def _nonneg_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = _int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _parallel(text: str) -> int:
    value = _int(text)
    if value == 0 or value < -1:
        raise argparse.ArgumentTypeError(f"invalid value for n_parallel: {value} (use -1 for auto or N >= 1)")
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: '{text}'") from None


def _unit_float(text: str) -> float:
    value = _float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0.0 and 1.0, got {value}")
    return value


def _seconds(text: str) -> float:
    value = _float(text)
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text}")
    return value


def _port(text: str) -> int:
    value = _int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 0 and 65535, got {value}")
    return value


def _gpu_layers(text: str) -> int:
    if text in ("auto", "-1"):
        return -1
    if text == "all":
        return 1 << 30
    return _nonneg_int(text)


def _flash_attn(text: str) -> str:
    low = text.lower()
    if low in TRUTHY:
        return "on"
    if low in FALSEY:
        return "off"
    if low in ("auto", "-1"):
        return "auto"
    raise argparse.ArgumentTypeError(f"unknown value for --flash-attn: '{text}' (on, off or auto)")


def _cache_type(text: str) -> str:
    if text.lower() not in KV_CACHE_TYPES:
        raise argparse.ArgumentTypeError(f"unsupported cache type '{text}'; allowed: {', '.join(KV_CACHE_TYPES)}")
    return text.lower()


def _nonneg_float(text: str) -> float:
    value = _float(text)
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _byte_size(text: str) -> int:
    """Bytes, with an optional K, M or G suffix (powers of 1024): 65536, 64K, 32M."""
    low = text.strip().lower().removesuffix("b") or "0"
    unit = low[-1] if low[-1] in "kmg" else ""
    number = low[: -1] if unit else low
    try:
        value = int(number) * _SIZE_UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid size '{text}' (bytes, or a number with K, M or G)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be > 0, got '{text}'")
    return value


def _key_list(text: str) -> list[str]:
    # comma-separated, with CSV quoting so a key may itself hold a comma
    row = next(csv.reader([text], skipinitialspace=True), [])
    return [k.strip() for k in row if k.strip()]


def _lora_files(text: str) -> list[LoraSpec]:
    paths = _key_list(text)
    if not paths:
        raise argparse.ArgumentTypeError("expected a LoRA adapter file (or several, comma-separated)")
    return [LoraSpec(p) for p in paths]


def _lora_scaled(text: str) -> list[LoraSpec]:
    """FNAME:SCALE[,FNAME:SCALE...]; the scale follows the last ':' so that a path may hold one."""
    specs = []
    for item in _key_list(text):
        path, sep, scale = item.rpartition(":")
        if not sep or not path:
            raise argparse.ArgumentTypeError(f"lora-scaled format: FNAME:SCALE, got '{item}'")
        value = _float(scale)
        # a NaN scale would never compare equal to itself (the scheduler groups requests by scales)
        if not math.isfinite(value) or abs(value) > 3.4028234663852886e38:
            raise argparse.ArgumentTypeError(f"invalid LoRA scale '{scale}' (a finite number)")
        specs.append(LoraSpec(path, value))
    if not specs:
        raise argparse.ArgumentTypeError("expected FNAME:SCALE")
    return specs


def _lora_argv(specs: list[LoraSpec]) -> list[str]:
    # Every adapter as --lora-scaled, so a child gets the same files, scales and ids (command-line order).
    out = []
    for spec in specs:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow([f"{spec.path}:{spec.scale!r}"])
        out += ["--lora-scaled", buf.getvalue()]
    return out


def _listed(text: str) -> list[str]:
    return [text]  # one value of a repeatable string flag


def _directory(text: str) -> str:
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"not a directory: {text}")
    return os.path.abspath(text)  # router children may run elsewhere


def _template_file(text: str) -> str:
    try:
        return pathlib.Path(text).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise argparse.ArgumentTypeError(f"cannot read chat template file '{text}': {exc}") from None


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _reasoning_format(text: str) -> str:
    from llamaserve.chat.output import REASONING_FORMATS

    if text not in REASONING_FORMATS:
        raise argparse.ArgumentTypeError(f"unknown reasoning format '{text}' (one of {', '.join(REASONING_FORMATS)})")
    return text


def _reasoning_budget(text: str) -> int:
    value = _int(text)
    if value < -1:
        raise argparse.ArgumentTypeError(f"must be -1 (unrestricted), 0 (thinking off) or a number of tokens, got {value}")
    return value


def _pooling(text: str) -> str:
    if text.lower() not in POOLING_TYPES:
        raise argparse.ArgumentTypeError(f"unknown pooling type '{text}' (one of {', '.join(POOLING_TYPES)})")
    return text.lower()


def _embd_normalize(text: str) -> int:
    value = _int(text)
    if value < -1:
        raise argparse.ArgumentTypeError(f"must be >= -1, got {value} (-1 none, 0 max-abs int16, 1 taxicab, 2 euclidean, >2 p-norm)")
    return value


def _env_bool(text: str) -> bool:
    low = text.lower()
    if low in TRUTHY:
        return True
    if low in FALSEY:
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean '{text}' (use one of {sorted(TRUTHY | FALSEY)})")


@dataclass(frozen=True)
class Flag:
    names: tuple[str, ...]
    dest: str  # attribute of Config, or "sampling.<attr>"
    help: str
    parse: Callable[[str], Any] | None = None  # None = boolean switch
    env: str | None = None
    negatives: tuple[str, ...] = ()  # for switches: the names that turn it off
    metavar: str = "N"
    repeatable: bool = False  # may be given several times; parse returns a list, the lists are joined
    unparse: Callable[[Any], list[str]] | None = None  # value -> argv tokens, where the default spelling would not do


FLAGS: tuple[Flag, ...] = (
    Flag(("-m", "--model"), "model", "model path (default: none = router mode, serving the bundled SmolLM2-135M-Instruct and the --models-dir models)", str, "LLAMA_ARG_MODEL", metavar="FNAME"),
    Flag(("-a", "--alias"), "alias", "model name reported by the API (default: model file name)", str, "LLAMA_ARG_ALIAS", metavar="STRING"),
    Flag(("--host",), "host", "IP address to listen on (default: 127.0.0.1)", str, "LLAMA_ARG_HOST", metavar="HOST"),
    Flag(("--port",), "port", "port to listen on (default: 8080, 0 = random)", _port, "LLAMA_ARG_PORT", metavar="PORT"),
    Flag(("-np", "--parallel"), "n_parallel", "number of server slots (default: -1 = auto: 4 with a unified KV cache)", _parallel, "LLAMA_ARG_N_PARALLEL"),
    Flag(("-c", "--ctx-size"), "n_ctx", "size of the prompt context (default: 0 = from model)", _nonneg_int, "LLAMA_ARG_CTX_SIZE"),
    Flag(("-b", "--batch-size"), "n_batch", "logical maximum batch size (default: 2048)", _positive_int, "LLAMA_ARG_BATCH"),
    Flag(("-ub", "--ubatch-size"), "n_ubatch", "physical maximum batch size (default: 512)", _positive_int, "LLAMA_ARG_UBATCH"),
    Flag(("--prompt-chunk",), "prompt_chunk", "prompt tokens per step while other requests are in flight (default: 0 = auto: 64 on CPU, the batch size with GPU offload)", _nonneg_int, None),
    Flag(("-t", "--threads"), "n_threads", "CPU threads for generation (default: -1 = all cores)", _int, "LLAMA_ARG_THREADS"),
    Flag(("-tb", "--threads-batch"), "n_threads_batch", "CPU threads for batch and prompt processing (default: same as --threads)", _int, "LLAMA_ARG_THREADS_BATCH"),
    Flag(("-n", "--predict", "--n-predict"), "sampling.n_predict", "default number of tokens to predict (default: -1 = until end of generation)", _int, "LLAMA_ARG_N_PREDICT"),
    Flag(("--temp", "--temperature"), "sampling.temperature", "default temperature (default: 0.80)", _float, "LLAMA_ARG_TEMPERATURE"),
    Flag(("--top-k",), "sampling.top_k", "default top-k sampling (default: 40, 0 = disabled)", _nonneg_int, "LLAMA_ARG_TOP_K"),
    Flag(("--top-p",), "sampling.top_p", "default top-p sampling (default: 0.95, 1.0 = disabled)", _unit_float, "LLAMA_ARG_TOP_P"),
    Flag(("--min-p",), "sampling.min_p", "default min-p sampling (default: 0.05, 0.0 = disabled)", _unit_float, "LLAMA_ARG_MIN_P"),
    Flag(("-s", "--seed"), "sampling.seed", "default RNG seed (default: -1 = random)", _int, "LLAMA_ARG_SEED", metavar="SEED"),
    Flag(("-r", "--reverse-prompt"), "sampling.stop", "default stop string for requests that give none; repeatable (default: none)", _listed, None, metavar="PROMPT", repeatable=True),
    Flag(("-cb", "--cont-batching"), "cont_batching", "continuous batching (default: enabled)", None, "LLAMA_ARG_CONT_BATCHING", ("-nocb", "--no-cont-batching")),
    Flag(("--webui", "--ui"), "webui", "serve the web chat UI at / (default: enabled)", None, "LLAMA_ARG_UI", ("--no-webui", "--no-ui")),
    Flag(("--slots",), "endpoint_slots", "expose the /slots endpoint (default: enabled)", None, "LLAMA_ARG_ENDPOINT_SLOTS", ("--no-slots",)),
    Flag(("--metrics",), "endpoint_metrics", "enable the Prometheus metrics endpoint GET /metrics (default: disabled)", None, "LLAMA_ARG_ENDPOINT_METRICS"),
    Flag(("--props",), "endpoint_props", "enable changing global properties via POST /props (default: disabled)", None, "LLAMA_ARG_ENDPOINT_PROPS"),
    Flag(("--slot-save-path",), "slot_save_path", "directory for slot KV cache files: POST /slots/{id}?action=save|restore (default: disabled)", _directory, None, metavar="PATH"),
    Flag(("--context-shift",), "ctx_shift", "shift the context when a generation fills it (default: disabled)", None, "LLAMA_ARG_CONTEXT_SHIFT", ("--no-context-shift",)),
    Flag(("--keep",), "sampling.n_keep", "tokens of the prompt kept on context shift (default: 0, -1 = all)", _int, None),
    Flag(("--cache-reuse",), "cache_reuse", "min chunk size reused from the cache via KV shifting (default: 0 = disabled)", _nonneg_int, "LLAMA_ARG_CACHE_REUSE"),
    Flag(("-sps", "--slot-prompt-similarity"), "slot_prompt_similarity", "how much a prompt must match a slot's cache to use that slot (default: 0.10, 0.0 = disabled)", _unit_float, None, metavar="SIMILARITY"),
    Flag(("-ngl", "--gpu-layers", "--n-gpu-layers"), "n_gpu_layers", "layers to offload to the GPU: N, 'auto' or 'all' (default: auto)", _gpu_layers, "LLAMA_ARG_N_GPU_LAYERS"),
    Flag(("-fa", "--flash-attn"), "flash_attn", "flash attention: on, off or auto (default: auto)", _flash_attn, "LLAMA_ARG_FLASH_ATTN", metavar="[on|off|auto]"),
    Flag(("-ctk", "--cache-type-k"), "cache_type_k", f"KV cache type for K ({', '.join(KV_CACHE_TYPES)}; default: f16)", _cache_type, "LLAMA_ARG_CACHE_TYPE_K", metavar="TYPE"),
    Flag(("-ctv", "--cache-type-v"), "cache_type_v", f"KV cache type for V ({', '.join(KV_CACHE_TYPES)}; default: f16)", _cache_type, "LLAMA_ARG_CACHE_TYPE_V", metavar="TYPE"),
    Flag(("-kvu", "--kv-unified"), "kv_unified", "one KV buffer shared by all slots (default: enabled when -np is auto)", None, "LLAMA_ARG_KV_UNIFIED", ("-no-kvu", "--no-kv-unified")),
    Flag(("--mmap",), "use_mmap", "memory-map the model (default: enabled)", None, "LLAMA_ARG_MMAP", ("--no-mmap",)),
    Flag(("--repack",), "repack", "weight repacking / extra CPU buffer types (default: enabled unless the CPU advertises AMX)", None, "LLAMA_ARG_REPACK", ("-nr", "--no-repack")),
    # --lora and --lora-scaled share one list: an adapter's id is its place on the command line
    Flag(("--lora",), "lora", "LoRA adapter file, applied at scale 1; repeatable or comma-separated (default: none)", _lora_files, None, metavar="FNAME", repeatable=True, unparse=_lora_argv),
    Flag(("--lora-scaled",), "lora", "LoRA adapter file with its scale, FNAME:SCALE; repeatable or comma-separated (default: none)", _lora_scaled, None, metavar="FNAME:SCALE", repeatable=True, unparse=_lora_argv),
    Flag(("--lora-init-without-apply",), "lora_init_without_apply", "load the LoRA adapters at scale 0; set their scales later with POST /lora-adapters (default: disabled)", None, None),
    Flag(("--mlock",), "use_mlock", "keep the model in RAM (default: disabled)", None, "LLAMA_ARG_MLOCK"),
    Flag(("--jinja",), "use_jinja", "render chat templates with jinja (default: enabled)", None, "LLAMA_ARG_JINJA", ("--no-jinja",)),
    Flag(("--chat-template",), "chat_template", "chat template: a built-in name or jinja source (default: the model's)", str, "LLAMA_ARG_CHAT_TEMPLATE", metavar="JINJA_TEMPLATE"),
    Flag(("--chat-template-file",), "chat_template", "read the chat template from a file", _template_file, "LLAMA_ARG_CHAT_TEMPLATE_FILE", metavar="JINJA_TEMPLATE_FILE"),
    Flag(("--chat-template-kwargs",), "chat_template_kwargs", "JSON object of extra chat template variables, e.g. '{\"enable_thinking\": false}'", _json_object, "LLAMA_CHAT_TEMPLATE_KWARGS", metavar="STRING"),
    Flag(("--prefill-assistant",), "prefill_assistant", "continue a final assistant message instead of closing it (default: enabled)", None, "LLAMA_ARG_PREFILL_ASSISTANT", ("--no-prefill-assistant",)),
    Flag(("--reasoning-format",), "reasoning_format", "where thoughts go: none (left in content), auto/deepseek (reasoning_content), deepseek-legacy (default: auto)", _reasoning_format, "LLAMA_ARG_THINK", metavar="FORMAT"),
    Flag(("--reasoning-budget",), "reasoning_budget", "thinking budget in tokens: -1 = unrestricted, 0 = thinking off, N = close the thoughts after N tokens (default: -1)", _reasoning_budget, "LLAMA_ARG_THINK_BUDGET", metavar="N"),
    Flag(("--reasoning-budget-message",), "reasoning_budget_message", "text inserted before the closing think marker when the budget runs out (default: none)", str, "LLAMA_ARG_THINK_BUDGET_MESSAGE", metavar="MESSAGE"),
    Flag(("--embedding", "--embeddings"), "embedding", "embedding-only server: /embedding(s) and /v1/embeddings; no text generation (default: disabled)", None, "LLAMA_ARG_EMBEDDINGS"),
    Flag(("--rerank", "--reranking"), "reranking", "reranking server: /rerank and aliases; implies --embedding with rank pooling (default: disabled)", None, "LLAMA_ARG_RERANKING"),
    Flag(("--pooling",), "pooling", "pooling type for embeddings: none, mean, cls, last or rank (default: the model's own)", _pooling, "LLAMA_ARG_POOLING", metavar="{none,mean,cls,last,rank}"),
    Flag(("--embd-normalize",), "embd_normalize", "default normalisation of pooled embeddings: -1 none, 0 max-abs int16, 1 taxicab, 2 euclidean, >2 p-norm (default: 2)", _embd_normalize, None),
    Flag(("--spm-infill",), "spm_infill", "build /infill prompts as suffix, prefix, middle instead of prefix, suffix, middle (default: disabled)", None, None),
    Flag(("-to", "--timeout"), "timeout", "HTTP read/write timeout in seconds (default: 3600)", _positive_int, "LLAMA_ARG_TIMEOUT"),
    Flag(("--threads-http",), "threads_http", "threads for blocking HTTP work (default: -1 = auto)", _int, "LLAMA_ARG_THREADS_HTTP"),
    # router mode (no --model)
    Flag(("--models-dir",), "models_dir", "router mode: directory of GGUF models, each served by name (default: none)", str, "LLAMA_ARG_MODELS_DIR", metavar="PATH"),
    Flag(("--models-preset",), "models_preset", "router mode: INI file of models and per-model flags (default: none)", str, "LLAMA_ARG_MODELS_PRESET", metavar="PATH"),
    Flag(("--models-max",), "models_max", "router mode: models loaded at once; loading another unloads the least recently used idle one (default: 4, 0 = unlimited)", _nonneg_int, "LLAMA_ARG_MODELS_MAX"),
    Flag(("--models-autoload",), "models_autoload", "router mode: load a model on its first request (default: enabled)", None, "LLAMA_ARG_MODELS_AUTOLOAD", ("--no-models-autoload",)),
    Flag(("--models-default",), "models_default", "router mode: model for requests that name none (default: the bundled model)", str, "LLAMA_ARG_MODELS_DEFAULT", metavar="NAME"),
    Flag(("--models-idle-ttl",), "models_idle_ttl", "router mode: unload a model after this many idle seconds (default: 0 = never)", _seconds, "LLAMA_ARG_MODELS_IDLE_TTL", metavar="SECONDS"),
    Flag(("--shutdown-grace",), "shutdown_grace", "seconds in-flight requests may run after SIGTERM/SIGINT before they are ended with an error (default: 30)", _nonneg_float, None, metavar="SECONDS"),
    # access control
    Flag(("--api-key",), "api_keys", "API key clients must send (Authorization: Bearer KEY or x-api-key: KEY); repeatable or comma-separated (default: none)", _key_list, "LLAMA_API_KEY", metavar="KEY", repeatable=True),
    Flag(("--api-key-file",), "api_key_file", "file of API keys, one per line; lines starting with # are comments (default: none)", str, "LLAMA_ARG_API_KEY_FILE", metavar="FNAME"),
    Flag(("--ssl-key-file",), "ssl_key_file", "PEM-encoded TLS private key: serve HTTPS (with --ssl-cert-file)", str, "LLAMA_ARG_SSL_KEY_FILE", metavar="FNAME"),
    Flag(("--ssl-cert-file",), "ssl_cert_file", "PEM-encoded TLS certificate: serve HTTPS (with --ssl-key-file)", str, "LLAMA_ARG_SSL_CERT_FILE", metavar="FNAME"),
    Flag(("--cors-origins",), "cors_origins", "allowed CORS origins: '*', 'localhost' (only localhost origins) or a comma-separated list (default: *)", str, "LLAMA_ARG_CORS_ORIGINS", metavar="ORIGINS"),
    Flag(("--cors-methods",), "cors_methods", "methods announced in CORS preflight answers (default: GET, POST, DELETE, OPTIONS)", str, "LLAMA_ARG_CORS_METHODS", metavar="METHODS"),
    Flag(("--cors-headers",), "cors_headers", "headers allowed in CORS requests (default: *)", str, "LLAMA_ARG_CORS_HEADERS", metavar="HEADERS"),
    Flag(("--cors-credentials",), "cors_credentials", "allow credentials in CORS requests; with --cors-origins '*' the request's Origin is echoed (default: enabled)", None, "LLAMA_ARG_CORS_CREDENTIALS", ("--no-cors-credentials",)),
    # request limits
    Flag(("--max-body-size",), "max_body_size", "largest request body accepted, in bytes or with K/M/G (default: 32M)", _byte_size, None, metavar="SIZE"),
    Flag(("--max-queue",), "max_queue", "tasks that may wait for a free slot; beyond it requests get 503 (default: 0 = no limit)", _nonneg_int, None),
    Flag(("--max-prompts",), "max_prompts", "most prompts (times n choices) one request may run (default: 2048)", _positive_int, None),
    Flag(("--max-n-probs",), "max_n_probs", "largest n_probs / top_logprobs a request may ask for (default: 100)", _nonneg_int, None),
    Flag(("-v", "--verbose", "--log-verbose"), "verbose", "log every request in detail", None, None),
    Flag(("--log-disable",), "log_disable", "disable logging", None, None),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llamaserve",
        description="llama-server in Python: native llama.cpp, OpenAI, Anthropic and Ollama APIs over libllama. "
        "Each option can also be set with the LLAMA_ARG_* environment variable shown; the command line wins.",
        allow_abbrev=False,
    )
    for flag in FLAGS:
        env_note = f" [env: {flag.env}]" if flag.env else ""
        if flag.parse is None:
            parser.add_argument(*flag.names, dest=flag.dest, action="store_const", const=True, default=None, help=flag.help + env_note)
            if flag.negatives:
                parser.add_argument(*flag.negatives, dest=flag.dest, action="store_const", const=False, help=argparse.SUPPRESS)
        elif flag.repeatable:
            parser.add_argument(*flag.names, dest=flag.dest, type=flag.parse, action="append", default=None, metavar=flag.metavar, help=flag.help + env_note)
        else:
            parser.add_argument(*flag.names, dest=flag.dest, type=flag.parse, default=None, metavar=flag.metavar, help=flag.help + env_note)
    return parser


def _help_names(parser: argparse.ArgumentParser) -> None:
    # Show the "off" spelling of each switch next to its "on" spelling in --help.
    for flag in FLAGS:
        if flag.negatives:
            for action in parser._actions:
                if action.dest == flag.dest and action.help is not argparse.SUPPRESS:
                    action.option_strings = list(flag.names) + list(flag.negatives)


def parse_args(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> Config:
    """Parse flags and LLAMA_ARG_* variables. Exits with status 2 and a message on bad input."""
    environ = os.environ if environ is None else environ
    parser = build_parser()
    _help_names(parser)
    args = parser.parse_args(argv)

    config = Config()
    sampling = SamplingDefaults()
    on_command_line: set[str] = set()
    for flag in FLAGS:
        value = getattr(args, flag.dest)
        if value is not None:
            on_command_line.add(flag.dest)
        if value is None and flag.env and flag.env in environ:
            raw = environ[flag.env]
            try:
                value = _env_bool(raw) if flag.parse is None else flag.parse(raw)
            except argparse.ArgumentTypeError as exc:
                parser.error(f"environment variable {flag.env}: {exc}")
            if flag.repeatable:
                value = [value]
        if value is None:
            continue
        if flag.repeatable:
            value = [item for given in value for item in given]
        if flag.dest.startswith("sampling."):
            setattr(sampling, flag.dest.split(".", 1)[1], value)
        else:
            setattr(config, flag.dest, value)
    config.sampling = sampling
    config.child_flags = child_flags(config, on_command_line)
    if sampling.seed == -1:
        sampling.seed = 0xFFFFFFFF

    # the HTTP side (keys, TLS) is the same in both modes
    if config.api_key_file:
        config.api_keys = config.api_keys + _read_key_file(parser, config.api_key_file)
    _check_tls(parser, config)
    for spec in config.lora:
        _check_gguf(parser, spec.path, "LoRA adapter")  # whether it fits the model is known once it loads
    if config.router_mode:
        _check_router(parser, config)
        return config
    _check_gguf(parser, config.model, "model")
    if config.reasoning_budget == 0:
        config.chat_template_kwargs.setdefault("enable_thinking", False)
    if config.n_ubatch > config.n_batch:
        config.n_ubatch = config.n_batch
    return config


# --- router mode ---

# Options the router sets for each child itself (or keeps to itself): never inherited from its own flags.
ROUTER_OWNED = frozenset({
    "model", "alias", "host", "port", "ssl_key_file", "ssl_cert_file",
    "models_dir", "models_preset", "models_max", "models_autoload", "models_default", "models_idle_ttl",
})


def _long_name(flag: Flag) -> str:
    return next((n for n in flag.names if n.startswith("--")), flag.names[0])


def flag_tokens(flag: Flag, value: Any) -> list[str]:
    """The argv spelling of one option value, as a child llamaserve reads it back."""
    if flag.unparse is not None:
        return flag.unparse(value)
    name = _long_name(flag)
    if flag.parse is None:
        if value:
            return [name]
        negative = next((n for n in flag.negatives if n.startswith("--")), None)
        return [negative] if negative else []
    if isinstance(value, list):
        return [token for item in value for token in (name, str(item))]
    if isinstance(value, dict):
        return [name, json.dumps(value)]
    return [name, str(value)]


def child_flags(config: Config, dests: set[str]) -> dict[str, list[str]]:
    """The given options (Config field names) of `config` as argv tokens, by field."""
    out: dict[str, list[str]] = {}
    for flag in FLAGS:
        if flag.dest in out or flag.dest not in dests or flag.dest in ROUTER_OWNED:
            continue
        if flag.dest.startswith("sampling."):
            value = getattr(config.sampling, flag.dest.split(".", 1)[1])
        else:
            value = getattr(config, flag.dest)
        out[flag.dest] = flag_tokens(flag, value)
    return out


_PRESET_MODEL_KEYS = {"model", "m", "LLAMA_ARG_MODEL"}
_PRESET_ALIAS_KEYS = {"alias", "a", "LLAMA_ARG_ALIAS"}


def _preset_keys() -> dict[str, tuple[Flag, bool]]:
    """INI key -> (flag, negated): long and short names without dashes, and LLAMA_ARG_* names."""
    keys: dict[str, tuple[Flag, bool]] = {}
    for flag in FLAGS:
        for name in flag.names:
            keys[name.lstrip("-")] = (flag, False)
        for name in flag.negatives:
            keys[name.lstrip("-")] = (flag, True)
        if flag.env:
            keys[flag.env] = (flag, False)
    return keys


def read_models_preset(path: str) -> dict[str, ModelPreset]:
    """Parse a --models-preset INI file as llama-server does: one section per model, `[*]` for all of them,
    keys are flag names without dashes (or LLAMA_ARG_* names). Raises ValueError naming the bad entry."""
    try:
        text = pathlib.Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read models preset {path}: {getattr(exc, 'strerror', None) or exc}") from None
    ini = configparser.ConfigParser(interpolation=None, strict=False, default_section="\0defaults",
                                    comment_prefixes=("#", ";"), inline_comment_prefixes=(";",))
    ini.optionxform = str  # keys are case-sensitive (LLAMA_ARG_* names)
    top = "\0top"  # llama-server allows `version = 1` before the first section
    try:
        ini.read_string(f"[{top}]\n{text}", source=path)
    except configparser.Error as exc:
        raise ValueError(f"models preset {path}: {exc}") from None
    keys = _preset_keys()
    presets: dict[str, ModelPreset] = {}
    for section in ini.sections():
        items = ini.items(section)
        if section == top:
            extra = [k for k, _ in items if k != "version"]
            if extra:
                raise ValueError(f"models preset {path}: '{extra[0]}' must be inside a [section] ([*] for every model)")
            continue
        preset = ModelPreset(name=section)
        for key, raw in items:
            raw = raw.strip()
            where = f"models preset {path}: [{section}] {key}"
            try:
                if key in _PRESET_MODEL_KEYS:
                    preset.model = raw
                elif key in _PRESET_ALIAS_KEYS:
                    preset.aliases = tuple(a.strip() for a in raw.split(",") if a.strip())
                elif key == "load-on-startup":
                    preset.load_on_startup = _env_bool(raw)
                elif key == "stop-timeout":
                    preset.stop_timeout = _seconds(raw)
                elif key == "version":
                    continue
                elif key in keys:
                    flag, negated = keys[key]
                    if flag.dest in ROUTER_OWNED:
                        continue  # the router decides these (host, port, ...) as llama-server does
                    if flag.parse is None:
                        preset.flags[flag.dest] = flag_tokens(flag, _env_bool(raw) != negated)
                    else:
                        flag.parse(raw)  # reject a bad value now rather than when the model loads
                        earlier = preset.flags.get(flag.dest, []) if flag.repeatable else []  # --lora and --lora-scaled
                        preset.flags[flag.dest] = earlier + [_long_name(flag), raw]
                else:
                    raise ValueError(f"{where}: unknown option")
            except argparse.ArgumentTypeError as exc:
                raise ValueError(f"{where}: {exc}") from None
        presets[section] = preset
    return presets


def _check_router(parser: argparse.ArgumentParser, config: Config) -> None:
    if config.models_dir and not os.path.isdir(config.models_dir):
        parser.error(f"--models-dir {config.models_dir}: not a directory")
    if config.models_preset:
        try:
            config.model_presets = read_models_preset(config.models_preset)
        except ValueError as exc:
            parser.error(str(exc))
    from llamaserve.router.catalog import Catalog, CatalogError

    try:
        Catalog.build(config)
    except CatalogError as exc:
        parser.error(str(exc))


def _check_gguf(parser: argparse.ArgumentParser, fname: str, what: str) -> None:
    path = pathlib.Path(fname)
    if not path.is_file():
        parser.error(f"{what} file not found: {fname}")
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        parser.error(f"cannot read {what} file {fname}: {exc.strerror}")
    if magic != b"GGUF":
        parser.error(f"not a GGUF {what} file: {fname}")


def _read_key_file(parser: argparse.ArgumentParser, fname: str) -> list[str]:
    try:
        with open(fname, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        parser.error(f"cannot read API key file {fname}: {getattr(exc, 'strerror', None) or exc}")
    keys = [k for k in (line.strip() for line in lines) if k and not k.startswith("#")]
    if not keys:
        parser.error(f"API key file {fname} holds no keys")
    return keys


def _check_tls(parser: argparse.ArgumentParser, config: Config) -> None:
    """Load the key and certificate now, so a bad pair stops the server before it loads the model."""
    key, cert = config.ssl_key_file, config.ssl_cert_file
    if not key and not cert:
        return
    if not (key and cert):
        parser.error("HTTPS needs both --ssl-key-file and --ssl-cert-file")
    for what, fname in (("key", key), ("certificate", cert)):
        if not os.path.isfile(fname):
            parser.error(f"TLS {what} file not found: {fname}")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError, ValueError) as exc:
        parser.error(f"cannot use TLS certificate {cert} with key {key}: {exc}")


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_args(argv)
    from llamaserve.server import run

    sys.exit(run(config))
