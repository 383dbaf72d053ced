"""A stand-in JSON Schema -> GBNF converter for the tool-grammar tests: it shapes values by type only.

The real converter lives in llamaserve.grammar (its own branch); these tests are
about how formats wrap argument grammars, so any converter with its interface will do.
"""

from __future__ import annotations

import json

from llamaserve.chat.tool_grammar import literal

_BASE = r'''
value ::= object | array | string | number | ( "true" | "false" | "null" ) space
object ::= "{" space ( string ":" space value ( "," space string ":" space value )* )? "}" space
array ::= "[" space ( value ( "," space value )* )? "]" space
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} ) )* "\"" space
number ::= "-"? ( "0" | [1-9] [0-9]{0,15} ) ( "." [0-9]+ )? ( [eE] [-+]? [0-9]{1,4} )? space
integer ::= "-"? ( "0" | [1-9] [0-9]{0,15} ) space
boolean ::= ( "true" | "false" ) space
space ::= | " " | "\n" [ \t]{0,20}
'''


def schema_to_gbnf(schema) -> str:
    if not isinstance(schema, dict):
        root = "value"
    elif "enum" in schema:
        root = "( " + " | ".join(literal(json.dumps(v)) for v in schema["enum"]) + " ) space"
    else:
        root = {"object": "object", "array": "array", "string": "string", "number": "number",
                "integer": "integer", "boolean": "boolean"}.get(schema.get("type"), "value")
    return f"root ::= {root}\n" + _BASE.strip() + "\n"
