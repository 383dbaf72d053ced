"""Every grammar the JSON Schema converter writes compiles in libllama (llama_sampler_init_grammar)."""

from __future__ import annotations

import pytest

from llamaserve.config import Config
from llamaserve.engine import grammar_compiles
from llamaserve.engine.model import Model
from llamaserve.grammar import JSON_OBJECT_GBNF, grammar_problem, schema_to_gbnf
from tests.conftest import MODEL
from tests.schema_cases import SCHEMAS


@pytest.fixture(scope="module")
def model():
    m = Model(Config(model=MODEL, n_parallel=1, n_ctx=256, n_threads=1))
    yield m
    m.close()


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_schema_grammar_compiles(model, name):
    grammar = schema_to_gbnf(SCHEMAS[name])
    assert grammar_compiles(model, grammar), grammar


def test_json_object_grammar_compiles(model):
    assert grammar_compiles(model, JSON_OBJECT_GBNF)


@pytest.mark.parametrize("grammar", ["root ::= (", 'main ::= "x"', "root ::= foo", 'root ::= root "x" | "y"'])
def test_invalid_grammars_are_refused_and_explained(model, grammar):
    assert not grammar_compiles(model, grammar)
    assert grammar_problem(grammar)
