"""Value types of llama-server's flags: text from argv or a LLAMA_ARG_* variable → a Config value.

Each raises BadValue with a message that says what was expected; the parser adds the flag's name.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pathlib
import re

from llamaserve.config import KV_CACHE_TYPES, POOLING_TYPES, LoraSpec


class BadValue(ValueError):
    """A flag's value cannot be read."""


TRUTHY = {"on", "enabled", "true", "1"}
FALSEY = {"off", "disabled", "false", "0"}
AUTO = {"auto", "-1"}


def integer(text: str) -> int:
    try:
        return int(text, 0) if text.strip().lower().startswith(("0x", "-0x")) else int(text)
    except ValueError:
        raise BadValue(f"invalid integer value: '{text}'") from None


def nonneg_int(text: str) -> int:
    value = integer(text)
    if value < 0:
        raise BadValue(f"must be >= 0, got {value}")
    return value


def positive_int(text: str) -> int:
    value = integer(text)
    if value <= 0:
        raise BadValue(f"must be > 0, got {value}")
    return value


def int_at_least(low: int):
    def parse(text: str) -> int:
        value = integer(text)
        if value < low:
            raise BadValue(f"must be >= {low}, got {value}")
        return value
    return parse


def int_between(low: int, high: int):
    def parse(text: str) -> int:
        value = integer(text)
        if not low <= value <= high:
            raise BadValue(f"must be between {low} and {high}, got {value}")
        return value
    return parse


def parallel(text: str) -> int:
    value = integer(text)
    if value == 0 or value < -1:
        raise BadValue(f"invalid value for n_parallel: {value} (use -1 for auto or N >= 1)")
    return value


def number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadValue(f"invalid number: '{text}'") from None
    return value


def unit_float(text: str) -> float:
    value = number(text)
    if not 0.0 <= value <= 1.0:
        raise BadValue(f"must be between 0.0 and 1.0, got {value}")
    return value


def nonneg_float(text: str) -> float:
    value = number(text)
    if not value >= 0.0:
        raise BadValue(f"must be >= 0, got {text}")
    return value


def sleep_seconds(text: str) -> int:
    """--sleep-idle-seconds: a positive number of seconds, or -1 for never (0 would sleep between requests)."""
    value = integer(text)
    if value == 0 or value < -1:
        raise BadValue(f"must be a number of seconds > 0, or -1 (never), got {value}")
    return value


def seconds(text: str) -> float:
    value = number(text)
    if not value >= 0.0:
        raise BadValue(f"must be a number of seconds >= 0, got {text}")
    return value


def port(text: str) -> int:
    value = integer(text)
    if not 0 <= value <= 65535:
        raise BadValue(f"port must be between 0 and 65535, got {value}")
    return value


def gpu_layers(text: str) -> int:
    if text in AUTO:
        return -1
    if text == "all":
        return 1 << 30
    return nonneg_int(text)


def boolean(text: str) -> bool:
    low = text.strip().lower()
    if low in TRUTHY:
        return True
    if low in FALSEY:
        return False
    raise BadValue(f"invalid boolean '{text}' (use one of {', '.join(sorted(TRUTHY | FALSEY))})")


def on_off_auto(text: str) -> str:
    low = text.strip().lower()
    if low in TRUTHY:
        return "on"
    if low in FALSEY:
        return "off"
    if low in AUTO:
        return "auto"
    raise BadValue(f"unknown value '{text}' (on, off or auto)")


def on_off(text: str) -> bool:
    low = text.strip().lower()
    if low in TRUTHY:
        return True
    if low in FALSEY:
        return False
    raise BadValue(f"unknown value '{text}' (on or off)")


def choice(*names: str, lower: bool = True):
    def parse(text: str) -> str:
        value = text.strip().lower() if lower else text
        if value not in names:
            raise BadValue(f"unknown value '{text}' (one of {', '.join(names)})")
        return value
    return parse


def cache_type(text: str) -> str:
    if text.lower() not in KV_CACHE_TYPES:
        raise BadValue(f"unsupported cache type '{text}'; allowed: {', '.join(KV_CACHE_TYPES)}")
    return text.lower()


pooling = choice(*POOLING_TYPES)


_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def byte_size(text: str) -> int:
    """Bytes, with an optional K, M or G suffix (powers of 1024): 65536, 64K, 32M."""
    low = text.strip().lower().removesuffix("b") or "0"
    unit = low[-1] if low[-1] in "kmg" else ""
    digits = low[:-1] if unit else low
    try:
        value = int(digits) * _SIZE_UNITS[unit]
    except ValueError:
        raise BadValue(f"invalid size '{text}' (bytes, or a number with K, M or G)") from None
    if value <= 0:
        raise BadValue(f"size must be > 0, got '{text}'")
    return value


def key_list(text: str) -> list[str]:
    """Comma-separated, with CSV quoting so that an item may itself hold a comma."""
    row = next(csv.reader([text], skipinitialspace=True), [])
    return [k.strip() for k in row if k.strip()]


def number_list(text: str) -> list[float]:
    items = [t for t in re.split(r"[,/]", text) if t.strip()]
    if not items:
        raise BadValue("expected a comma-separated list of numbers")
    return [number(t) for t in items]


def int_list(text: str) -> list[int]:
    items = [t for t in text.split(",") if t.strip()]
    if not items:
        raise BadValue("expected a comma-separated list of integers")
    return [integer(t) for t in items]


def lora_files(text: str) -> list[LoraSpec]:
    paths = key_list(text)
    if not paths:
        raise BadValue("expected a LoRA adapter file (or several, comma-separated)")
    return [LoraSpec(p) for p in paths]


def scaled_files(what: str):
    """FNAME:SCALE[,FNAME:SCALE...]; the scale follows the last ':' so that a path may hold one."""
    def parse(text: str) -> list[LoraSpec]:
        specs = []
        for item in key_list(text):
            path, sep, scale = item.rpartition(":")
            if not sep or not path:
                raise BadValue(f"{what} format: FNAME:SCALE, got '{item}'")
            value = number(scale)
            # a NaN scale would never compare equal to itself (the scheduler groups requests by scales)
            if not math.isfinite(value) or abs(value) > 3.4028234663852886e38:
                raise BadValue(f"invalid {what} scale '{scale}' (a finite number)")
            specs.append(LoraSpec(path, value))
        if not specs:
            raise BadValue("expected FNAME:SCALE")
        return specs
    return parse


lora_scaled = scaled_files("lora-scaled")


def scaled_argv(name: str):
    """Files with their scales back to argv, each as `name FNAME:SCALE` (command-line order kept)."""
    def unparse(specs: list[LoraSpec]) -> list[str]:
        out = []
        for spec in specs:
            buf = io.StringIO()
            csv.writer(buf, lineterminator="").writerow([f"{spec.path}:{spec.scale!r}"])
            out += [name, buf.getvalue()]
        return out
    return unparse


# Every adapter as --lora-scaled, so a child gets the same files, scales and ids.
lora_argv = scaled_argv("--lora-scaled")


def endpoints(text: str) -> list[str]:
    """--rpc: comma-separated host:port (IPv6 in brackets)."""
    from llamaserve.engine.rpc import parse_endpoint  # no libggml is loaded for this

    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise BadValue("no RPC servers given (host:port,...)")
    for item in items:
        try:
            parse_endpoint(item)
        except ValueError as exc:
            raise BadValue(str(exc)) from None
    return items


def listed(text: str) -> list[str]:
    return [text]  # one value of a repeatable string flag


def directory(text: str) -> str:
    if not os.path.isdir(text):
        raise BadValue(f"not a directory: {text}")
    return os.path.abspath(text)  # router children may run elsewhere


def text_file(what: str):
    def parse(path: str) -> str:
        try:
            return pathlib.Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BadValue(f"cannot read {what} file '{path}': {getattr(exc, 'strerror', None) or exc}") from None
    return parse


def json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BadValue(f"invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadValue("must be a JSON object")
    return value


def json_object_file(path: str) -> dict:
    return json_object(text_file("JSON")(path))


def json_schema(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BadValue(f"invalid JSON schema: {exc}") from None
    if not isinstance(value, (dict, bool)):
        raise BadValue("a JSON schema is an object (or true/false)")
    return value if isinstance(value, dict) else ({} if value else {"not": {}})


def json_schema_file(path: str) -> dict:
    return json_schema(text_file("JSON schema")(path))


def reasoning_format(text: str) -> str:
    from llamaserve.chat.output import REASONING_FORMATS

    if text not in REASONING_FORMATS:
        raise BadValue(f"unknown reasoning format '{text}' (one of {', '.join(REASONING_FORMATS)})")
    return text


def reasoning_budget(text: str) -> int:
    value = integer(text)
    if value < -1:
        raise BadValue(f"must be -1 (unrestricted), 0 (thinking off) or a number of tokens, got {value}")
    return value


def embd_normalize(text: str) -> int:
    value = integer(text)
    if value < -1:
        raise BadValue(f"must be >= -1, got {value} (-1 none, 0 max-abs int16, 1 taxicab, 2 euclidean, >2 p-norm)")
    return value


def cpu_mask(text: str) -> str:
    """An arbitrarily long hex mask of CPUs (bit i = CPU i), with or without 0x."""
    digits = text.strip().lower().removeprefix("0x")
    if not digits or not re.fullmatch(r"[0-9a-f]+", digits):
        raise BadValue(f"invalid CPU mask '{text}' (hex digits, e.g. 0xff)")
    return digits


def cpu_range(text: str) -> str:
    """lo-hi, either end may be left out (0 and the last CPU)."""
    m = re.fullmatch(r"\s*(\d*)\s*-\s*(\d*)\s*", text)
    if not m or (m.group(1) and m.group(2) and int(m.group(1)) > int(m.group(2))):
        raise BadValue(f"invalid CPU range '{text}' (lo-hi, e.g. 0-7)")
    return f"{m.group(1)}-{m.group(2)}"


poll = int_between(0, 100)
priority = int_between(-1, 3)  # low, normal, medium, high, realtime


def override_kv(text: str) -> list[str]:
    """KEY=TYPE:VALUE[,KEY=TYPE:VALUE...] with TYPE int, float, bool or str."""
    items = [t for t in text.split(",") if t]
    for item in items:
        key, eq, rest = item.partition("=")
        kind, colon, value = rest.partition(":")
        if not (key and eq and colon) or kind not in ("int", "float", "bool", "str"):
            raise BadValue(f"invalid override '{item}' (KEY=TYPE:VALUE, TYPE one of int, float, bool, str)")
        if len(key) >= 128:
            raise BadValue(f"override key too long: '{key}'")
        if kind == "int":
            integer(value)
        elif kind == "float":
            number(value)
        elif kind == "bool" and value not in ("true", "false"):
            raise BadValue(f"invalid boolean in override '{item}' (true or false)")
        elif kind == "str" and len(value) >= 128:
            raise BadValue(f"string override too long: '{item}'")
    return items


def override_tensor(text: str) -> list[str]:
    """PATTERN=BUFFER_TYPE[,PATTERN=BUFFER_TYPE...]; the buffer type is checked when the model loads."""
    items = [t for t in text.split(",") if t]
    for item in items:
        pattern, eq, buft = item.partition("=")
        if not (pattern and eq and buft):
            raise BadValue(f"invalid tensor override '{item}' (<tensor name pattern>=<buffer type>)")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise BadValue(f"invalid tensor name pattern '{pattern}': {exc}") from None
    return items


def logit_bias(text: str) -> list[tuple[int, float]]:
    """TOKEN_ID(+/-)BIAS, e.g. 15043+1 or 15043-inf (repeatable)."""
    m = re.fullmatch(r"\s*(\d+)\s*([+-])\s*(.+?)\s*", text)
    if not m:
        raise BadValue(f"invalid logit bias '{text}' (TOKEN_ID(+/-)BIAS, e.g. 15043+1)")
    bias = number(m.group(3))
    return [(int(m.group(1)), bias if m.group(2) == "+" else -bias)]


def samplers(text: str) -> list[str]:
    """Sampler names separated by ';' (llama.cpp's names and aliases), checked against the engine's list."""
    return _samplers([t for t in re.split(r"[;,\s]+", text.strip()) if t])


def sampler_sequence(text: str) -> list[str]:
    """Sampler letters, e.g. edskypmxt."""
    return _samplers(text.strip())


def _samplers(value: list[str] | str) -> list[str]:
    from llamaserve.errors import ServerError
    from llamaserve.protocol.native import parse_samplers

    try:
        return parse_samplers(value)
    except ServerError as exc:
        raise BadValue(str(exc).replace(' in "samplers"', "")) from None


def seed(text: str) -> int:
    value = integer(text)
    if value == -1:
        return 0xFFFFFFFF
    if not 0 <= value <= 0xFFFFFFFF:
        raise BadValue(f"seed must be -1 (random) or between 0 and 4294967295, got {value}")
    return value


def layer_range(start: str, end: str) -> tuple[int, int]:
    lo, hi = integer(start), integer(end)
    if lo < 0 or hi < lo:
        raise BadValue(f"invalid layer range {start} {end} (START <= END, both >= 0)")
    return (lo, hi)
