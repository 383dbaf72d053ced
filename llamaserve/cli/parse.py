"""argv and LLAMA_ARG_* variables → Config, matching names exactly as llama-server does.

No prefixes or abbreviations, no clustering of short options; in a name that starts with `--`, `_`
reads as `-`. The command line wins over the environment. Bad input exits with status 2 and one line.
"""

from __future__ import annotations

import os
import pathlib
import re
import ssl
import sys
from typing import Any, NoReturn, Sequence

from llamaserve.cli import values as v
from llamaserve.cli.children import child_flags, read_models_preset
from llamaserve.cli.flags import BY_NAME, FLAGS, GROUPS, NO_GPU, Flag
from llamaserve.config import Config, SamplingDefaults
from llamaserve.hub.cache import cache_dir, url_cache_dir
from llamaserve.hub.client import endpoint

PROG = "llamaserve"
SECRET_FLAGS = frozenset({"--hf-token", "--api-key"})  # never shown back (in /props, logs)


class UsageError(Exception):
    """A command line or environment that cannot be read."""


def fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    print(f"(run '{PROG} --help' for the options)", file=sys.stderr)
    sys.exit(2)


def canonical(arg: str) -> str:
    return arg.replace("_", "-") if arg.startswith("--") else arg


def read_argv(argv: Sequence[str]) -> list[tuple[Flag, str, Any]]:
    """Each option given: (flag, spelling used, value), in command-line order."""
    out = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name = canonical(arg)
        if name not in BY_NAME:
            raise UsageError(f"unrecognized argument: {arg}")
        flag, negative = BY_NAME[name]
        n = flag.n_values
        raw = list(argv[i + 1 : i + 1 + n])
        if len(raw) < n:
            raise UsageError(f"{arg}: expected {'a value' if n == 1 else f'{n} values'} ({flag.metavar})")
        i += 1 + n
        if flag.removed:
            raise UsageError(f"{arg}: the option has been removed: {flag.removed}")
        if flag.expands:  # a preset: its options, as if given here (later ones override them)
            out.extend((f, arg, value) for f, _, value in read_argv(flag.expands))
            continue
        try:
            value = (not negative) if flag.parse is None else flag.parse(*raw)
        except v.BadValue as exc:
            raise UsageError(f"{arg}: {exc}") from None
        out.append((flag, arg, value))
    return out


def _preset(spelling: str) -> bool:
    return bool(BY_NAME[canonical(spelling)][0].expands)


def _env_value(flag: Flag, environ: dict[str, str]) -> tuple[bool, Any, str]:
    """(found, value, variable) from the flag's LLAMA_ARG_* variable (or its LLAMA_ARG_NO_* twin)."""
    if not flag.env:
        return False, None, ""
    if flag.negatives and flag.env.startswith("LLAMA_ARG_"):
        negative = flag.env.replace("LLAMA_ARG_", "LLAMA_ARG_NO_", 1)
        if negative in environ:
            return True, False, negative
    if flag.env not in environ:
        return False, None, ""
    raw = environ[flag.env]
    try:
        if flag.parse is None:
            if flag.negatives:
                return True, v.boolean(raw), flag.env
            if raw.strip().lower() in v.FALSEY:
                return False, None, ""  # a plain switch is only turned on by its variable
            return True, v.boolean(raw), flag.env
        if flag.pair:
            return True, flag.parse(*raw.split()), flag.env
        value = flag.parse(raw)
    except (v.BadValue, TypeError) as exc:
        raise UsageError(f"environment variable {flag.env}: {exc}") from None
    return True, value, flag.env


def _store(config: Config, flag: Flag, value: Any) -> None:
    key = flag.key
    if key.startswith(GROUPS):
        group, attr = key.split(".", 1)
        setattr(getattr(config, group), attr, value)
    elif key.startswith("ignored."):
        config.ignored[flag.long_name] = "***" if flag.long_name in SECRET_FLAGS else value
    else:
        setattr(config, key, value)


def _gpu_backend() -> bool:
    from llamaserve.engine.devices import gpu_offload_supported

    return gpu_offload_supported()


def build_config(argv: Sequence[str], environ: dict[str, str]) -> tuple[Config, list[str]]:
    """The Config and the informational commands asked for (in order). Raises UsageError."""
    given = read_argv(argv)
    config = Config()
    config.sampling = SamplingDefaults()
    values: dict[str, tuple[Flag, str, Any]] = {}  # Flag.key -> (flag, where it came from, value)
    commands: list[str] = []
    for flag, spelling, value in given:
        if flag.command:
            commands.append(flag.command)
            continue
        key = flag.key
        if flag.repeatable and key in values:
            value = values[key][2] + value
        elif key in values and not flag.repeatable and not (_preset(spelling) or _preset(values[key][1])):
            config.notices.append(f"{spelling} given more than once: the last value counts")
        values[key] = (flag, spelling, value)
    for flag in FLAGS:
        if flag.key in values or flag.command:
            continue
        found, value, variable = _env_value(flag, environ)
        if found:
            if flag.removed:
                raise UsageError(f"environment variable {variable}: the option has been removed: {flag.removed}")
            values[flag.key] = (flag, variable, value)

    gpu: bool | None = None
    if "rpc_servers" in values:
        from llamaserve.engine.rpc import HOW_TO_GET_RPC, available

        if not available():
            raise UsageError(f"{values['rpc_servers'][1]}: {HOW_TO_GET_RPC}")
        gpu = True  # the RPC servers' devices take offloaded layers as a GPU would
    for key, (flag, where, value) in values.items():
        if flag.needs and (flag.asks is None or flag.asks(value)):
            raise UsageError(f"{where}: {flag.needs}")
        if flag.needs:
            continue  # a value that asks for nothing missing (--cache-ram 0, --no-mmproj, ...)
        _store(config, flag, value)
        if flag.noop:
            config.notices.append(f"{where} {flag.noop}")
            config.ignored.setdefault(flag.long_name, "***" if flag.long_name in SECRET_FLAGS else value)
        elif flag.gpu is not None and flag.gpu(value):
            gpu = _gpu_backend() if gpu is None else gpu
            if not gpu:
                config.notices.append(f"{where} {NO_GPU}")
                config.ignored[flag.long_name] = value
    if "agent" in values:  # as llama-server's -ag / -no-ag, but an explicit --tools or --(no-)ui-mcp-proxy wins
        if "tools" not in values:
            config.tools = ["all"] if config.agent else []
        if "ui_mcp_proxy" not in values:
            config.ui_mcp_proxy = config.agent
    if config.tools_enabled and "cors_origins" not in values:
        # as llama-server: a page on another site must not drive the tools through a local browser
        config.cors_origins = "localhost"
        config.notices.append("built-in tools or MCP servers are enabled: CORS origins default to localhost "
                              "(set --cors-origins to change it)")
    config.notices.extend(config.spec.notices)
    _read_vertex(config, environ)
    config.model_cache_dir = cache_dir(environ)
    config.url_cache_dir = url_cache_dir(environ)
    config.hub_endpoint = endpoint(environ)
    config.child_flags = child_flags(config, [key for key, (_, where, _) in values.items() if not where.startswith(("LLAMA_", "HF_", "MTMD_"))])
    return config, commands


def _read_vertex(config: Config, environ: dict[str, str]) -> None:
    """Vertex AI's custom-container variables (api/vertex.py): with AIP_MODE=PREDICTION the predict route
    (AIP_PREDICT_ROUTE, default /predict), a health route beside /health (AIP_HEALTH_ROUTE) and the
    port, AIP_HTTP_PORT (default 8080), which wins over --port as the platform connects there."""
    if environ.get("AIP_MODE", "") != "PREDICTION":
        return

    def route(name: str, default: str) -> str:
        value = environ.get(name) or default
        return value if not value or value.startswith("/") else "/" + value

    config.predict_route = route("AIP_PREDICT_ROUTE", "/predict")
    config.predict_health_route = route("AIP_HEALTH_ROUTE", "")
    try:
        port = v.port(environ.get("AIP_HTTP_PORT") or "8080")
    except v.BadValue as exc:
        raise UsageError(f"environment variable AIP_HTTP_PORT: {exc}") from None
    if port != config.port:
        config.notices.append(f"AIP_HTTP_PORT={port} overrides the port {config.port} (Vertex AI connects there)")
    config.port = port


def parse_args(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> Config:
    """Parse flags and LLAMA_ARG_* variables. Exits with status 2 and a message on bad input; runs
    an informational command (--help, --version, ...) and exits 0."""
    environ = os.environ if environ is None else environ
    argv = sys.argv[1:] if argv is None else argv
    try:
        config, commands = build_config(argv, environ)
    except UsageError as exc:
        fail(str(exc))
    if commands:
        from llamaserve.cli.info import run_command

        sys.exit(run_command(commands[0], config))
    try:
        finish(config)
    except UsageError as exc:
        fail(str(exc))
    return config


def finish(config: Config) -> None:
    """Checks and derived values once every option is read."""
    sampling = config.sampling
    if config.escape:
        sampling.stop = [process_escapes(s) for s in sampling.stop]
        if sampling.dry_sequence_breakers:
            sampling.dry_sequence_breakers = [process_escapes(s) for s in sampling.dry_sequence_breakers]
    if config.reasoning == "off":
        config.chat_template_kwargs.setdefault("enable_thinking", False)
    elif config.reasoning == "on":
        config.chat_template_kwargs.setdefault("enable_thinking", True)
    if config.api_key_file:
        config.api_keys = config.api_keys + _read_key_file(config.api_key_file)
    _check_tls(config)
    _check_tools(config)
    for spec in config.lora:
        _check_gguf(spec.path, "LoRA adapter")  # whether it fits the model is known once it loads
    for spec in config.control_vectors:
        _check_gguf(spec.path, "control vector")
    if config.router_mode:
        _check_router(config)
        return
    if config.hf_repo:
        _check_hf_repo(config.hf_repo)
    elif not config.model_url:
        _check_gguf(config.model, "model")
    if config.reasoning_budget == 0:
        config.chat_template_kwargs.setdefault("enable_thinking", False)
    if config.n_ubatch > config.n_batch:
        config.n_ubatch = config.n_batch


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "'": "'", '"': '"', "\\": "\\", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "?": "?"}


def process_escapes(text: str) -> str:
    """\\n, \\t, ... and \\xHH as llama.cpp reads them in -r and --dry-sequence-breaker (-e, on by default)."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            if nxt == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[i + 2 : i + 4]):
                out.append(chr(int(text[i + 2 : i + 4], 16)))
                i += 4
                continue
        out.append(c)
        i += 1
    return "".join(out)


def _check_router(config: Config) -> None:
    if config.models_dir and not os.path.isdir(config.models_dir):
        raise UsageError(f"--models-dir {config.models_dir}: not a directory")
    if config.models_preset:
        try:
            config.model_presets = read_models_preset(config.models_preset)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    from llamaserve.router.catalog import Catalog, CatalogError

    try:
        Catalog.build(config)
    except CatalogError as exc:
        raise UsageError(str(exc)) from None


def _check_hf_repo(spec: str) -> None:
    from llamaserve.hub.names import HubError, split_repo_tag, valid_repo_id

    try:
        repo, _ = split_repo_tag(spec)
    except HubError as exc:
        raise UsageError(f"--hf-repo: {exc.message}") from None
    if not valid_repo_id(repo):
        raise UsageError(f"--hf-repo: '{repo}' is not a repository id (letters, digits, '_', and '.', '-' between them)")


def _check_gguf(fname: str, what: str) -> None:
    path = pathlib.Path(fname)
    if not path.is_file():
        raise UsageError(f"{what} file not found: {fname}")
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise UsageError(f"cannot read {what} file {fname}: {exc.strerror}") from None
    if magic != b"GGUF":
        raise UsageError(f"not a GGUF {what} file: {fname}")


def _read_key_file(fname: str) -> list[str]:
    try:
        with open(fname, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read API key file {fname}: {getattr(exc, 'strerror', None) or exc}") from None
    keys = [k for k in (line.strip() for line in lines) if k and not k.startswith("#")]
    if not keys:
        raise UsageError(f"API key file {fname} holds no keys")
    return keys


def _check_tls(config: Config) -> None:
    """Load the key and certificate now, so a bad pair stops the server before it loads the model."""
    key, cert = config.ssl_key_file, config.ssl_cert_file
    if not key and not cert:
        return
    if not (key and cert):
        raise UsageError("HTTPS needs both --ssl-key-file and --ssl-cert-file")
    for what, fname in (("key", key), ("certificate", cert)):
        if not os.path.isfile(fname):
            raise UsageError(f"TLS {what} file not found: {fname}")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise UsageError(f"cannot use TLS certificate {cert} with key {key}: {exc}") from None


def _check_tools(config: Config) -> None:
    """Tool names, the tools runtime and the MCP configuration are checked before anything starts."""
    from llamaserve.tools.builtin import enabled_builtins
    from llamaserve.tools.mcp_config import parse_mcp_servers
    from llamaserve.tools.runtime import RuntimeRefused, parse_runtime

    try:
        enabled_builtins(config.tools)
    except ValueError as exc:
        raise UsageError(f"--tools: {exc}") from None
    if config.tools_runtime:
        try:
            parse_runtime(config.tools_runtime, for_call=False)
        except RuntimeRefused as exc:
            raise UsageError(f"--tools-runtime: {exc.message}") from None
    sources = []
    if config.mcp_servers_config:
        try:
            sources.append((pathlib.Path(config.mcp_servers_config).read_text(encoding="utf-8"), config.mcp_servers_config))
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"failed to open MCP config file: {config.mcp_servers_config}: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None
    if config.mcp_servers_json:
        sources.append((config.mcp_servers_json, "--mcp-servers-json"))
    names: set[str] = set()
    for text, where in sources:
        try:
            servers, warnings = parse_mcp_servers(text, where)
        except ValueError as exc:
            raise UsageError(f"failed to parse MCP config: {exc}") from None
        config.notices.extend(warnings)
        for server in servers:
            if server.name in names:  # one name, one server: tools are found by it
                config.notices.append(f"{where}: MCP server name '{server.name}' given twice, the first one counts")
                continue
            names.add(server.name)
            config.mcp_servers.append(server)
