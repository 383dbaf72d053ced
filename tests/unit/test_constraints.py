"""Request fields -> grammar (protocol/constraints.py): every failure is an InvalidRequest that says why."""

from __future__ import annotations

import pytest

from llamaserve.errors import InvalidRequest
from llamaserve.grammar import JSON_OBJECT_GBNF, schema_to_gbnf
from llamaserve.protocol.constraints import check_grammar, request_grammar, response_format_grammar


def test_request_grammar():
    assert request_grammar("", None) == ""
    assert request_grammar('root ::= "x"', None) == 'root ::= "x"'
    assert request_grammar("", {"type": "integer"}) == schema_to_gbnf({"type": "integer"})
    assert request_grammar("", True) == schema_to_gbnf({})


@pytest.mark.parametrize("grammar, schema, fragment", [
    ('root ::= "x"', {"type": "string"}, "cannot be used together"),
    ("", [1], '"json_schema" must be a JSON Schema'),
    ("", {"type": "object", "dependentRequired": {}}, '"json_schema": unsupported JSON Schema keyword "dependentRequired" at #'),
])
def test_request_grammar_refusals(grammar, schema, fragment):
    with pytest.raises(InvalidRequest) as exc:
        request_grammar(grammar, schema)
    assert fragment in exc.value.message and exc.value.status == 400


@pytest.mark.parametrize("fmt, expected", [
    (None, ""),
    ({"type": "text"}, ""),
    ({"type": "json_object"}, JSON_OBJECT_GBNF),
    ({"type": "json_object", "schema": {"type": "boolean"}}, schema_to_gbnf({"type": "boolean"})),
    ({"type": "json_schema", "json_schema": {"name": "x", "strict": True, "schema": {"type": "null"}}}, schema_to_gbnf({"type": "null"})),
    ({"type": "json_schema", "json_schema": {"name": "x"}}, schema_to_gbnf({})),
])
def test_response_format(fmt, expected):
    assert response_format_grammar(fmt) == expected


@pytest.mark.parametrize("fmt, fragment", [
    ("json", '"response_format" must be an object'),
    ({"type": "yaml"}, '"response_format.type" must be'),
    ({"type": "json_schema", "json_schema": {"schema": {"not": {}}}}, '"response_format.json_schema.schema": unsupported'),
])
def test_response_format_refusals(fmt, fragment):
    with pytest.raises(InvalidRequest) as exc:
        response_format_grammar(fmt)
    assert fragment in exc.value.message


def test_check_grammar():
    check_grammar("", lambda g: False)  # no grammar: nothing to compile
    check_grammar('root ::= "x"', lambda g: True)
    with pytest.raises(InvalidRequest, match="invalid grammar: undefined rule 'y'"):
        check_grammar("root ::= y", lambda g: False)
    with pytest.raises(InvalidRequest, match="libllama could not compile it"):
        check_grammar('root ::= "x"', lambda g: False)
