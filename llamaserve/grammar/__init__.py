"""Grammars for constrained output: JSON Schema -> GBNF (pure, stdlib only)."""

from llamaserve.grammar.gbnf_reader import grammar_problem
from llamaserve.grammar.json_schema import JSON_OBJECT_GBNF, SchemaError, schema_to_gbnf

__all__ = ["schema_to_gbnf", "SchemaError", "JSON_OBJECT_GBNF", "grammar_problem"]
