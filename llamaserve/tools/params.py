"""Reading a tool call's parameters: a missing or wrongly typed one is the caller's error (400)."""

from __future__ import annotations

from typing import Any

from llamaserve.errors import InvalidRequest

_MISSING = object()


def param(params: dict, name: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
    value = params.get(name, _MISSING)
    if value is _MISSING or value is None:
        if default is _MISSING:
            raise InvalidRequest(f"missing parameter '{name}'")
        return default
    # bool is an int in Python; a JSON true is no line number
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        names = "/".join(k.__name__ for k in _kinds(kind))
        raise InvalidRequest(f"parameter '{name}' must be of type {names}")
    return value


def _kinds(kind) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)
