"""The server-wide sampling defaults (--repeat-penalty, --mirostat, -l, --grammar, ...) apply to every
request field the client did not send; a field it sent wins."""

import pytest

from llamaserve.config import SamplingDefaults
from llamaserve.protocol import native


def params(body: dict, **defaults):
    req = native.parse_request({"prompt": "x", **body})
    task = native.build_tasks(req, [[1]], SamplingDefaults(**defaults), lambda text, special: [7], 100)[0]
    return task


@pytest.mark.parametrize("field, server, request_value", [
    ("repeat_penalty", 1.3, 1.1), ("repeat_last_n", 32, 8), ("presence_penalty", 0.5, 0.1),
    ("frequency_penalty", 0.4, 0.2), ("typical_p", 0.7, 0.9), ("top_n_sigma", 1.5, 2.0),
    ("dynatemp_range", 0.3, 0.1), ("dynatemp_exponent", 2.0, 1.5), ("dry_multiplier", 0.8, 0.2),
    ("dry_base", 2.0, 1.5), ("dry_allowed_length", 4, 3), ("dry_penalty_last_n", 16, 8),
    ("xtc_probability", 0.5, 0.2), ("xtc_threshold", 0.2, 0.3), ("mirostat", 2, 1),
    ("mirostat_tau", 3.0, 4.0), ("mirostat_eta", 0.2, 0.3), ("ignore_eos", True, False),
])
def test_server_default_applies_unless_the_request_sends_the_field(field, server, request_value):
    assert getattr(params({}, **{field: server}).params, field) == server
    assert getattr(params({field: request_value}, **{field: server}).params, field) == request_value


def test_list_defaults_logit_bias_breakers_samplers():
    t = params({}, logit_bias=[(5, -1.0)], dry_sequence_breakers=["|"], samplers=["top_k", "temperature"])
    assert (t.params.logit_bias, t.params.dry_sequence_breakers, t.params.samplers) == ([(5, -1.0)], ["|"], ["top_k", "temperature"])
    t = params({"logit_bias": [[6, 2.0]], "dry_sequence_breakers": ["#"], "samplers": ["min_p"]},
               logit_bias=[(5, -1.0)], dry_sequence_breakers=["|"], samplers=["top_k"])
    assert (t.params.logit_bias, t.params.dry_sequence_breakers, t.params.samplers) == ([(6, 2.0)], ["#"], ["min_p"])
    plain = params({})
    assert plain.params.logit_bias == [] and plain.params.samplers == list(native.DEFAULT_SAMPLERS)


def test_grammar_default_only_without_a_constraint_of_the_request():
    assert params({}, grammar='root ::= "a"').params.grammar == 'root ::= "a"'
    assert params({"grammar": 'root ::= "b"'}, grammar='root ::= "a"').params.grammar == 'root ::= "b"'
    assert "root" in params({}, json_schema={"type": "integer"}).params.grammar
    own = params({"json_schema": {"type": "boolean"}}, grammar='root ::= "a"').params.grammar
    assert own != 'root ::= "a"' and "true" in own


def test_cache_prompt_default():
    assert params({}).cache_prompt and not params({}, cache_prompt=False).cache_prompt
    assert params({"cache_prompt": True}, cache_prompt=False).cache_prompt
