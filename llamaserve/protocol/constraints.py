"""Constrained-output request fields -> the task's GBNF grammar, and the check that libllama accepts it.

Shared by every API family: native `grammar`/`json_schema`, OpenAI `response_format`.
Everything fails closed: a grammar that cannot be built or compiled is a 400, never
a 200 with unconstrained output.
"""

from __future__ import annotations

from typing import Any, Callable

from llamaserve.errors import InvalidRequest
from llamaserve.grammar import JSON_OBJECT_GBNF, SchemaError, grammar_problem, schema_to_gbnf


def schema_grammar(schema: Any, field: str) -> str:
    """The grammar for a JSON Schema given in request field `field` (named in the error message)."""
    if not isinstance(schema, (dict, bool)):
        raise InvalidRequest(f"{field} must be a JSON Schema (an object or a boolean)")
    try:
        return schema_to_gbnf(schema)
    except SchemaError as exc:
        raise InvalidRequest(f"{field}: {exc}") from None


def request_grammar(grammar: str, json_schema: Any) -> str:
    """Native fields: a GBNF `grammar` or a `json_schema`, not both."""
    if json_schema is None:
        return grammar
    if grammar:
        raise InvalidRequest('"grammar" and "json_schema" cannot be used together: pass one of them')
    return schema_grammar(json_schema, '"json_schema"')


def response_format_grammar(response_format: Any) -> str:
    """OpenAI `response_format`: text (no grammar), json_object (any object, or llama.cpp's `schema`
    extension), or json_schema ({"json_schema": {"schema": ..., "strict": ...}}; no schema = any JSON)."""
    if response_format is None:
        return ""
    if not isinstance(response_format, dict):
        raise InvalidRequest('"response_format" must be an object')
    kind = response_format.get("type")
    if kind == "text":
        return ""
    if kind == "json_object":
        if "schema" in response_format:
            return schema_grammar(response_format["schema"], '"response_format.schema"')
        return JSON_OBJECT_GBNF
    if kind == "json_schema":
        spec = response_format.get("json_schema", {})
        if not isinstance(spec, dict):
            raise InvalidRequest('"response_format.json_schema" must be an object')
        return schema_grammar(spec.get("schema", {}), '"response_format.json_schema.schema"')
    raise InvalidRequest('"response_format.type" must be "text", "json_object" or "json_schema"')


def check_grammar(grammar: str, compiles: Callable[[str], bool]) -> None:
    """400 with the reason if libllama will not compile `grammar` (compiles: the engine's check)."""
    if grammar and not compiles(grammar):
        reason = grammar_problem(grammar) or "libllama could not compile it"
        raise InvalidRequest(f"invalid grammar: {reason}")
