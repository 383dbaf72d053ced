"""The JSON Schema -> GBNF converter: the language of each grammar, exactness, and its refusals.

Grammars are checked through their text (tests/unit/gbnf_tools.py reads GBNF back): a matcher decides
membership, a sampler draws random members that must parse as JSON and validate with `jsonschema`.
"""

from __future__ import annotations

import datetime
import json
import random
import re

import jsonschema
import pytest

from llamaserve.grammar import JSON_OBJECT_GBNF, SchemaError, grammar_problem, schema_to_gbnf
from llamaserve.grammar.gbnf import left_recursive_rule, parse_gbnf
from tests.schema_cases import SCHEMAS
from tests.unit.gbnf_tools import Matcher, Sampler


def matcher(schema) -> Matcher:
    return Matcher(schema_to_gbnf(schema))


def validator(schema):
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    if isinstance(schema, dict) and isinstance(schema.get("items"), list):
        cls = jsonschema.Draft7Validator  # tuple-form items
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


# --- every supported schema: random members of the grammar are valid instances ---

@pytest.mark.parametrize("name", list(SCHEMAS))
def test_grammar_members_validate(name):
    schema = SCHEMAS[name]
    grammar = schema_to_gbnf(schema)
    rules = parse_gbnf(grammar)
    assert "root" in rules and left_recursive_rule(rules) is None
    check = validator(schema)
    sample = Sampler(grammar, seed=hash(name) & 0xFFFF)
    for _ in range(150):
        text = sample()
        value = json.loads(text)
        errors = [e.message for e in check.iter_errors(value)]
        assert not errors, (text, errors)


# --- exact languages ---

@pytest.mark.parametrize("schema, accepted, rejected", [
    ({"type": "string", "maxLength": 3}, ['""', '"abc"', '"\\n\\u00e9x"', '"é"'], ['"abcd"', "abc", '"a\nb"', '"\\ud800"']),
    ({"type": "string", "minLength": 2}, ['"ab"', '"\\"\\\\"'], ['"a"', '""']),
    ({"type": "boolean"}, ["true", "false"], ["True", "1", '"true"']),
    ({"type": "null"}, ["null"], ["None", '""']),
    ({"type": "number"}, ["0", "-1.5", "2e10", "1E-3", "0.25"], ["01", "1.", ".5", "+1", "1e999", "NaN"]),
    ({"type": "integer"}, ["0", "-7", "123"], ["-0", "01", "1.0", "1e3", "12345678901234567"]),
    ({"enum": ["a", 1, None, [1, 2]]}, ['"a"', "1", "null", "[1,2]"], ['"b"', "2", "[1, 2]"]),
    ({"const": {"k": "v"}}, ['{"k":"v"}'], ['{"k": "w"}', "{}"]),
    ({"type": "string", "enum": ["x", 2]}, ['"x"'], ["2"]),
    ({"type": ["integer", "null"]}, ["5", "null"], ['"5"', "true"]),
    ({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2},
     ["[1]", "[1, 2]", "[ 1,\n 2 ]"], ["[]", "[1,2,3]", "[1 ,2]", '["1"]']),
    ({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
     ['["a", 1]'], ['["a"]', '["a", 1, 2]', '[1, "a"]']),
    ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "required": ["b"]},
     ['{"b": ""}', '{"a": 1, "b": "x"}', '{ "a":1,"b":"x" }'], ["{}", '{"a": 1}', '{"b": "x", "a": 1}', '{"b": "", "c": 1}']),
    ({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False},
     ["{}", '{"a": 3}'], ['{"b": 3}', '{"a": 3, "a": 4}']),
    ({"type": "object", "properties": {"id": {"type": "integer"}}, "additionalProperties": {"type": "boolean"}},
     ['{"id": 1, "x": true}', '{"x": false, "y": true}', '{"idx": true}', '{"i": true}', "{}"],
     ['{"x": 1}', '{"id": true}', '{"id": 1, "id": false}']),
    ({"type": "object", "additionalProperties": False}, ["{}", "{ }"], ['{"a": 1}']),
    ({"anyOf": [{"type": "integer", "minimum": 5}, {"type": "string", "maxLength": 1}]}, ["5", '"x"'], ["4", '"xy"']),
    ({"allOf": [{"type": "integer", "minimum": 0}, {"maximum": 3}]}, ["0", "3"], ["-1", "4"]),
    ({"type": "string", "format": "uuid"}, ['"123e4567-e89b-12d3-a456-426614174000"'], ['"123e4567e89b12d3a456426614174000"']),
    ({"type": "string", "format": "time"}, ['"23:59:59Z"', '"08:00:00.123+05:30"'], ['"24:00:00Z"', '"12:00:00"', '"12:60:00Z"']),
    ({"type": "string", "format": "date-time"}, ['"2024-02-29T12:00:00Z"'], ['"2023-02-29T12:00:00Z"', '"2024-02-29 12:00:00Z"']),
])
def test_language(schema, accepted, rejected):
    m = matcher(schema)
    for text in accepted:
        assert m(text), text
    for text in rejected:
        assert not m(text), text


@pytest.mark.parametrize("lo, hi", [(-37, 1234), (0, 0), (5, 5), (-20, -3), (1, 100), (99, 1001), (0, None), (None, 12),
                                    (7, None), (None, -15), (-150, None)])
def test_integer_ranges_are_exact(lo, hi):
    schema = {"type": "integer"}
    if lo is not None:
        schema["minimum"] = lo
    if hi is not None:
        schema["maximum"] = hi
    m = matcher(schema)
    for n in range(-2000, 2001):
        assert m(str(n)) == ((lo is None or n >= lo) and (hi is None or n <= hi)), n
    assert not m("-0") and not m("007")


def test_integer_bounds_exclusive_and_fractional():
    m = matcher({"type": "integer", "exclusiveMinimum": -2.5, "exclusiveMaximum": 3})
    assert [n for n in range(-10, 10) if m(str(n))] == [-2, -1, 0, 1, 2]
    m = matcher({"type": "integer", "minimum": 0.5, "maximum": 2.5})
    assert [n for n in range(-10, 10) if m(str(n))] == [1, 2]


def test_date_format_is_exact():
    m = matcher({"type": "string", "format": "date"})
    for year in (1, 4, 100, 1900, 2000, 2023, 2024, 9999):
        for month in range(0, 14):
            for day in range(0, 33):
                text = f"{year:04d}-{month:02d}-{day:02d}"
                try:
                    datetime.date(year, month, day)
                    valid = True
                except ValueError:
                    valid = False
                assert m(json.dumps(text)) == valid, text
    assert not m('"0000-01-01"')


_PATTERNS = [
    "^[a-c]{2,3}$", "b", "^a", "c$", "^(ab|cd)+$", "^a?b*c+$", "x|^y|z$", r"^\d+(\.\d{1,2})?$",
    "^[^a]b$", r"^\w\W$", r"^\s$", "^a.c$", "^(a|)+b$", "^a{2}$", "^a{2,}$", r"^\(\)$", "^[-a]$", "^[a-]$",
    "ab*", "[0-9]+", "^x{$", r"^\x41\u0042$", "^[\\]]$", "^(?:a|b)(?<n>c)$", r'^"\\$',
]
_ALPHABET = 'abcdxyz019 ._-(){},"\\\t\nA'


@pytest.mark.parametrize("pattern", _PATTERNS)
def test_patterns_agree_with_a_regex_engine(pattern):
    m = matcher({"type": "string", "pattern": pattern})
    # Python's re with ECMA's end anchor (Python's $ also matches before a final newline)
    py = re.compile(pattern.replace("(?<n>", "(?P<n>").replace("$", r"\Z"))
    rng = random.Random(pattern)
    candidates = {"", "a", "ab", "abc", "aab", "abcd", "bb", "cd", "abab", "1.25", "12", "x{", "()", "-", "AB", "yz"}
    candidates |= {"".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 6))) for _ in range(300)}
    for s in candidates:
        assert m(json.dumps(s)) == (py.search(s) is not None), (pattern, s)


def test_pattern_braces_that_are_not_quantifiers_are_literal():
    # ECMA (Annex B): "{,2}" is no quantifier, so these are literal characters
    m = matcher({"type": "string", "pattern": "^a{,2}$"})
    assert m('"a{,2}"') and not m('"aa"')


def test_pattern_with_length_bounds():
    m = matcher({"type": "string", "pattern": "^x[a-z]+$", "minLength": 3, "maxLength": 5})
    assert [s for s in ["x", "xa", "xab", "xabcd", "xabcde"] if m(json.dumps(s))] == ["xab", "xabcd"]
    # redundant bounds are fine for any shape of pattern
    assert matcher({"type": "string", "pattern": "^(ab|cd)$", "maxLength": 2})('"cd"')


def test_json_object_grammar():
    m = Matcher(JSON_OBJECT_GBNF)
    assert m("{}") and m('{"a": [1, {"b": null}], "c": "d"}')
    assert not m("[]") and not m('"x"') and not m("1")


def test_recursive_schema_nests():
    m = matcher(SCHEMAS["ref-recursive"])
    assert m('{"value": 1, "next": {"value": 2, "next": null}}')
    assert not m('{"value": 1, "next": {"value": 2}}')


def test_whitespace_is_bounded():
    m = matcher({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]})
    assert m('{\n  "a": 1\n}') and m('{"a":1}')
    assert not m('{\n\n\n"a": 1}') and not m('{' + " " * 2 + '"a": 1}') and not m('{"a": 1} ')


def test_annotations_are_ignored_and_grammar_is_compact():
    assert schema_to_gbnf({"type": "integer", "title": "n", "description": "d"}) == schema_to_gbnf({"type": "integer"})
    grammar = schema_to_gbnf({"type": "string", "maxLength": 3})
    assert grammar.splitlines()[0] == 'root ::= "\\"" char{0,3} "\\""'


# --- refusals: each says what and where ---

@pytest.mark.parametrize("schema, fragment", [
    ({"type": "object", "properties": {"x": {"type": "object", "patternProperties": {"a": {}}}}},
     'unsupported JSON Schema keyword "patternProperties" at #/properties/x'),
    ({"not": {"type": "string"}}, 'unsupported JSON Schema keyword "not" at #'),
    ({"type": "integer", "multipleOf": 3}, '"multipleOf"'),
    ({"type": "object", "minProperties": 1}, '"minProperties"'),
    ({"if": {}, "then": {}}, '"if"'),
    ({"$ref": "#/$defs/Missing"}, '$ref "#/$defs/Missing" not found'),
    ({"$ref": "https://example.com/s.json"}, "only references within the schema"),
    ({"$ref": "#node"}, "anchors are not supported"),
    ({"type": "string", "pattern": "^(a$"}, "missing ')'"),
    ({"type": "string", "pattern": "[a-"}, "unterminated character class"),
    ({"type": "string", "pattern": "*a"}, "nothing to repeat"),
    ({"type": "string", "pattern": "a{3,1}"}, "out of order"),
    ({"type": "string", "pattern": "[z-a]"}, "range out of order"),
    ({"type": "string", "pattern": "(?=a)b"}, "lookahead and lookbehind"),
    ({"type": "string", "pattern": r"\bword"}, "word boundary"),
    ({"type": "string", "pattern": r"(a)\1"}, "backreferences"),
    ({"type": "string", "pattern": r"\p{L}"}, "Unicode property"),
    ({"type": "string", "pattern": "a^b"}, "anchors"),
    ({"type": "string", "pattern": "^[a-z]+", "maxLength": 3}, "not anchored at both ends"),
    ({"type": "string", "pattern": "^(a+|b+)$", "maxLength": 3}, "cannot be combined exactly"),
    ({"type": "string", "format": "email"}, 'unsupported "format": "email"'),
    ({"type": "string", "format": "date", "pattern": "^2"}, '"pattern" together with "format"'),
    ({"type": "number", "minimum": 0}, '"minimum" on a "number"'),
    ({"type": "array", "uniqueItems": True}, "uniqueItems"),
    ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, '"oneOf" at #: branches 0 and 1 can match the same value'),
    ({"oneOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                {"type": "object", "properties": {"b": {"type": "integer"}}, "required": ["b"]}]}, '"oneOf"'),
    ({"allOf": [{"type": "string", "pattern": "^a"}, {"pattern": "b$"}]}, 'two different "pattern" values'),
    ({"type": "integer", "minimum": 5, "maximum": 4}, "no integer lies within the bounds at #"),
    ({"type": "string", "minLength": 3, "maxLength": 2}, "minLength 3 > maxLength 2"),
    ({"allOf": [{"type": "string"}, {"type": "integer"}]}, "contradict"),
    ({"enum": []}, '"enum" at # allows no value'),
    ({"type": "object", "properties": {"a": False}, "required": ["a"]}, "is false"),
    ({"type": "object", "required": ["a"], "additionalProperties": False}, 'required property "a"'),
    (False, "is false"),
    ({"type": "strin"}, 'unknown type "strin"'),
    ({"type": "string", "maxLength": -1}, '"maxLength" at # must be a non-negative integer'),
    ({"properties": []}, '"properties" at # must be an object'),
    ("string", "must be an object or a boolean"),
    ({"$defs": {"A": {"$ref": "#/$defs/A"}}, "$ref": "#/$defs/A"}, "refers only to itself"),
    ({"$defs": {"A": {"anyOf": [{"$ref": "#/$defs/A"}, {"type": "null"}], "type": "object"}}, "$ref": "#/$defs/A"},
     "combined"),
    ({"$defs": {"A": {"anyOf": [{"$ref": "#/$defs/A"}, {"type": "null"}]}}, "$ref": "#/$defs/A"}, "$ref cycle"),
    ({"$defs": {"A": {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "required": ["a"]}},
      "$ref": "#/$defs/A"}, "no finite JSON value"),
    ({"type": "string", "minLength": 5000}, "minLength 5000"),
])
def test_refusals(schema, fragment):
    with pytest.raises(SchemaError) as exc:
        schema_to_gbnf(schema)
    assert fragment in str(exc.value)


def test_unreachable_alternatives_are_dropped_not_refused():
    # an anyOf branch no value satisfies just disappears; a property no value satisfies is left out
    m = matcher({"anyOf": [{"type": "integer", "minimum": 3, "maximum": 1}, {"type": "null"}]})
    assert m("null") and not m("2")
    m = matcher({"type": "object", "properties": {"a": False, "b": {"type": "integer"}}})
    assert m('{"b": 1}') and not m('{"a": 1}')


def test_oversized_counts_narrow_to_the_engine_limit():
    # libllama reads a larger maximum as "unbounded"; narrowing keeps the schema's limit honoured
    assert "char{0,2000}" in schema_to_gbnf({"type": "string", "maxLength": 5000})
    assert "{0,2000}" in schema_to_gbnf({"type": "string", "pattern": "^a{0,9000}$"})
    with pytest.raises(SchemaError, match="above the supported 2000"):
        schema_to_gbnf({"type": "string", "pattern": "^a{2001}$"})


def test_huge_integer_bounds_keep_their_digit_count():
    m = matcher({"type": "integer", "minimum": 10 ** 20})
    assert m(str(10 ** 20)) and m(str(10 ** 20 + 12345)) and not m(str(10 ** 20 - 1))


# --- explaining GBNF that libllama refuses ---

@pytest.mark.parametrize("grammar, fragment", [
    ("root ::= (", "expecting ')'"),
    ('root ::= "abc', "unterminated string"),
    ("root ::= [a-", "unterminated character class"),
    ("root ::= foo", "undefined rule 'foo'"),
    ('main ::= "x"', "no 'root' rule"),
    ("root ::= root \"x\" | \"y\"", "left-recursive"),
    ("root ::= * \"x\"", "nothing before it to repeat"),
    ('root ::= "a"{3000}', "exceeds libllama's limit"),
    ('root ::= "\\q"', "unknown escape"),
    ("root = \"x\"", "expecting '::='"),
    ("", "empty"),
])
def test_grammar_problem(grammar, fragment):
    problem = grammar_problem(grammar)
    assert problem is not None and fragment in problem, problem


def test_grammar_problem_none_for_valid():
    assert grammar_problem('root ::= "a" b # comment\nb ::= [0-9]+ (\n "x" | "y"\n)') is None
    assert grammar_problem(JSON_OBJECT_GBNF) is None
