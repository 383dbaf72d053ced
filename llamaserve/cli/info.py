"""The informational commands: --help, --version, --list-devices, --completion-bash, --cache-list."""

from __future__ import annotations

import shutil
import sys
import textwrap

from llamaserve.cli.flags import FLAGS, Flag
from llamaserve.config import Config


def _spellings(flag: Flag) -> str:
    names = ", ".join(flag.names + flag.negatives)
    if flag.pair:
        return f"{names} {flag.metavar}"
    return f"{names} {flag.metavar}" if flag.parse is not None else names


def usage() -> str:
    width = max(60, min(shutil.get_terminal_size((100, 20)).columns, 120))
    lines = [
        "usage: llamaserve [options]",
        "",
        "llama-server in Python: native llama.cpp, OpenAI, Anthropic and Ollama APIs over libllama.",
        "Without -m it runs as a router over the bundled model and --models-dir / --models-preset models.",
        "Each option can also be set with the environment variable shown; the command line wins.",
        "",
    ]
    for flag in FLAGS:
        if flag.removed:
            continue
        head = _spellings(flag)
        text = flag.help
        if flag.env:
            text += f" [env: {flag.env}]"
        if flag.needs:
            text += f" [not available yet: {flag.needs}]"
        elif flag.noop:
            text += f" [{flag.noop}]"
        body = textwrap.wrap(text, width - 36) or [""]
        if len(head) > 32:
            lines.append(f"  {head}")
            lines.extend(" " * 36 + b for b in body)
        else:
            lines.append(f"  {head:<33} {body[0]}")
            lines.extend(" " * 36 + b for b in body[1:])
    return "\n".join(lines)


def version() -> str:
    from llamaserve import __version__
    from llamaserve.engine.devices import build_info

    info = build_info()
    return (f"llamaserve {__version__}\n"
            f"llama-cpp-python {info['llama_cpp_python']}, ggml {info['ggml_version']} (commit {info['ggml_commit']})\n"
            f"{info['system_info']}")


def list_devices(config: Config) -> str:
    from llamaserve.engine.devices import devices
    from llamaserve.engine.rpc import add_servers

    add_servers(config.rpc_servers)  # as llama-server: --rpc's devices are listed with the local ones
    lines = ["Available devices:"]
    for dev in devices():
        lines.append(f"  {dev.name}: {dev.description} ({dev.kind}, {dev.memory_total >> 20} MiB, {dev.memory_free >> 20} MiB free; "
                     f"buffer type {dev.buffer_type})")
    return "\n".join(lines)


def completion_bash() -> str:
    names = " ".join(n for f in FLAGS if not f.removed for n in f.names + f.negatives)
    files = " ".join(n for f in FLAGS for n in f.names if f.metavar in ("FNAME", "FILE", "PATH", "JINJA_TEMPLATE_FILE"))
    return textwrap.dedent(f"""\
        # bash completion for llamaserve; load it with: source <(llamaserve --completion-bash)
        _llamaserve() {{
            local cur prev
            cur="${{COMP_WORDS[COMP_CWORD]}}"
            prev="${{COMP_WORDS[COMP_CWORD-1]}}"
            case " {files} " in
                *" $prev "*) COMPREPLY=( $(compgen -f -- "$cur") ); return 0 ;;
            esac
            COMPREPLY=( $(compgen -W "{names}" -- "$cur") )
        }}
        complete -F _llamaserve llamaserve
        """)


def cache_list(config: Config) -> str:
    """The Hugging Face cache's models by the names -hf and the router take, as llama-server lists them."""
    from llamaserve.hub.cache import scan_cache

    models = scan_cache(config.model_cache_dir)
    return "\n".join([f"number of models in cache: {len(models)}"] + [f"{i:4d}. {m.name}" for i, m in enumerate(models, 1)])


def run_command(command: str, config: Config) -> int:
    if command == "cache_list":
        print(cache_list(config))
        return 0
    if command == "list_devices":
        from llamaserve.engine.rpc import RpcError

        try:
            print(list_devices(config))
        except RpcError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    text = {"help": usage, "version": version, "completion_bash": completion_bash}[command]()
    print(text)
    return 0
