"""Router mode's side of the command line: the router's own flags as argv for its children, and
--models-preset INI files read against the flag table."""

from __future__ import annotations

import configparser
import json
import pathlib
from typing import Any

from llamaserve.cli import values as v
from llamaserve.cli.flags import FLAGS, GROUPS, Flag
from llamaserve.config import Config, ModelPreset

# Options the router sets for each child itself (or keeps to itself): never inherited from its own flags.
ROUTER_OWNED = frozenset({
    "model", "alias", "host", "port", "ssl_key_file", "ssl_cert_file", "reuse_port", "api_prefix", "static_path",
    "models_dir", "models_preset", "models_max", "models_autoload", "models_default", "models_idle_ttl",
    # the router relays its children's log lines itself, in its own layout
    "log_file", "log_jsonl", "log_prefix", "log_timestamps", "log_colors",
    # the router serves /tools itself: children running MCP servers and tools of their own would double them
    "tools", "tools_runtime", "tools_root", "mcp_servers_config", "mcp_servers_json", "agent",
})


def value_of(config: Config, key: str) -> Any:
    """A flag's value in `config` by its Flag.key: a Config attribute, sampling.X, spec.X or ignored.NAME."""
    if key.startswith(GROUPS):
        group, attr = key.split(".", 1)
        return getattr(getattr(config, group), attr)
    if key.startswith("ignored."):
        return config.ignored[key.split(".", 1)[1]]
    return getattr(config, key)


def flag_tokens(flag: Flag, value: Any) -> list[str]:
    """The argv spelling of one option value, as a child llamaserve reads it back."""
    if flag.unparse is not None:
        return flag.unparse(value)
    name = flag.long_name
    if flag.parse is None:
        if value:
            return [name]
        negative = next((n for n in flag.negatives if n.startswith("--")), None)
        return [negative] if negative else []
    if flag.pair:
        return [name, *(str(x) for x in value)]
    if isinstance(value, list) and flag.repeatable:
        return [token for item in value for token in (name, _scalar(item))]
    return [name, _scalar(value)]


def _scalar(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, list):
        return ",".join(str(x) for x in value)
    if isinstance(value, tuple):  # a logit bias (token, bias)
        token, bias = value
        return f"{token}{'+' if bias >= 0 else '-'}{abs(bias)}"
    if hasattr(value, "path"):  # LoraSpec of a control vector
        return f"{value.path}:{value.scale!r}"
    return str(value)


def _canonical() -> dict[str, Flag]:
    # the first flag of the table for each key: the one whose value reads back as it is
    # (--chat-template before --chat-template-file, -j before -jf, --rope-freq-scale before --rope-scale)
    out: dict[str, Flag] = {}
    for flag in FLAGS:
        out.setdefault(flag.key, flag)
    return out


CANONICAL = _canonical()


def child_flags(config: Config, keys: list[str]) -> dict[str, list[str]]:
    """The options given to the router (by Flag.key) as argv tokens for each child, in long spelling."""
    out: dict[str, list[str]] = {}
    for key in keys:
        flag = CANONICAL[key]
        if flag.dest in ROUTER_OWNED or flag.command or flag.needs:
            continue
        value = value_of(config, key)
        if value == "***":
            continue  # a secret of an option without effect: nothing to pass on
        out[key] = flag_tokens(flag, value)
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
                    preset.load_on_startup = v.boolean(raw)
                elif key == "stop-timeout":
                    preset.stop_timeout = v.seconds(raw)
                elif key == "dedup-cache-models":
                    preset.dedup_cache_models = v.boolean(raw)
                elif key == "version":
                    continue
                elif key in keys:
                    flag, negated = keys[key]
                    if flag.dest in ROUTER_OWNED or flag.command:
                        continue  # the router decides these (host, port, ...) as llama-server does
                    if flag.parse is None:
                        preset.flags[flag.key] = flag_tokens(flag, v.boolean(raw) != negated)
                    elif flag.pair:
                        parts = raw.split()
                        if len(parts) != 2:
                            raise v.BadValue("expected two values")
                        flag.parse(*parts)
                        preset.flags[flag.key] = [flag.long_name, *parts]
                    else:
                        flag.parse(raw)  # reject a bad value now rather than when the model loads
                        earlier = preset.flags.get(flag.key, []) if flag.repeatable else []  # --lora and --lora-scaled
                        preset.flags[flag.key] = earlier + [flag.long_name, raw]
                else:
                    raise ValueError(f"{where}: unknown option")
            except v.BadValue as exc:
                raise ValueError(f"{where}: {exc}") from None
        presets[section] = preset
    return presets
