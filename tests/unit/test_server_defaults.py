"""The server-wide sampling defaults (--repeat-penalty, --mirostat, -l, --grammar, ...) apply to every
request field the client did not send; a field it sent wins."""

import pytest

from llamaserve.config import SamplingDefaults
from llamaserve.errors import InvalidRequest
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


# --- null fields, special cases of llama-server's request parsing, adaptive-p ---

@pytest.mark.parametrize("field, server", [
    ("repeat_penalty", 1.3), ("typical_p", 0.7), ("mirostat", 2), ("dry_allowed_length", 4), ("ignore_eos", True),
    ("temperature", 0.3), ("top_k", 7),
])
def test_a_null_field_is_a_field_left_out(field, server):
    # llama-server reads null as "not given": the server's value stands
    assert getattr(params({field: None}, **{field: server}).params, field) == server


def test_fields_without_a_server_default_take_the_engines():
    # SamplingDefaults has no min_keep: the request's or SamplingParams' own
    assert params({}).params.min_keep == 0 and params({"min_keep": 3}).params.min_keep == 3


def test_dry_base_below_one_means_the_servers():
    assert params({"dry_base": 0.5}, dry_base=2.5).params.dry_base == 2.5
    assert params({"dry_base": 1.2}, dry_base=2.5).params.dry_base == 1.2


def test_dry_breakers_server_none_and_request_empty():
    assert params({}).params.dry_sequence_breakers == list(native.DEFAULT_DRY_BREAKERS)
    assert params({}, dry_sequence_breakers=[]).params.dry_sequence_breakers == []  # --dry-sequence-breaker none
    with pytest.raises(InvalidRequest, match="dry_sequence_breakers"):
        params({"dry_sequence_breakers": []})


def test_request_logit_bias_replaces_the_servers_even_when_empty():
    assert params({"logit_bias": []}, logit_bias=[(5, -1.0)]).params.logit_bias == []
    assert params({"logit_bias": None}, logit_bias=[(5, -1.0)]).params.logit_bias == [(5, -1.0)]
    # -l ids beyond this vocabulary (100 tokens here) are dropped, not handed to the sampler
    assert params({}, logit_bias=[(5, -1.0), (500, 2.0)]).params.logit_bias == [(5, -1.0)]


@pytest.mark.parametrize("server, body, greedy", [
    ({}, {"temperature": 0}, True),
    ({"repeat_penalty": 1.3}, {"temperature": 0}, False),  # the server's penalty changes the logits
    ({"repeat_penalty": 1.3}, {"temperature": 0, "repeat_penalty": 1.0}, True),
    ({"temperature": 0.0}, {}, True),
    ({"temperature": 0.0, "mirostat": 2}, {}, False),
    ({"temperature": 0.0, "dry_multiplier": 0.8}, {}, False),
    ({"temperature": 0.0, "grammar": 'root ::= "a"'}, {}, False),
    ({"temperature": 0.0, "logit_bias": [(3, 5.0)]}, {}, True),  # biases are applied before the argmax
])
def test_is_greedy_follows_the_resolved_values(server, body, greedy):
    assert params(body, **server).params.is_greedy is greedy


def test_cache_prompt_null_is_the_servers():
    assert not params({"cache_prompt": None}, cache_prompt=False).cache_prompt


def test_empty_request_grammar_leaves_the_servers():
    assert params({"grammar": ""}, grammar='root ::= "a"').params.grammar == 'root ::= "a"'
    assert params({"grammar": None}, grammar='root ::= "a"').params.grammar == 'root ::= "a"'


def test_adaptive_p_names_fields_and_limits():
    assert native.parse_samplers(["adaptive-p"]) == ["adaptive_p"] and native.parse_samplers("ka") == ["top_k", "adaptive_p"]
    p = params({"samplers": ["min_p", "adaptive_p"], "adaptive_target": 0.3, "adaptive_decay": 0.5}).params
    assert (p.samplers, p.adaptive_target, p.adaptive_decay) == (["min_p", "adaptive_p"], 0.3, 0.5)
    assert (params({}).params.adaptive_target, params({}).params.adaptive_decay) == (-1.0, 0.9)
    assert params({"adaptive_target": 4}).params.adaptive_target == 1.0  # clamped, as llama-server
    with pytest.raises(InvalidRequest, match="adaptive_decay"):
        native.parse_request({"prompt": "x", "adaptive_decay": 0.995})
    settings = native.generation_settings(params({"adaptive_target": 0.2}), "m")
    assert (settings["adaptive_target"], settings["adaptive_decay"]) == (0.2, 0.9)


def test_integer_values_of_float_fields_become_floats():
    p = params({"repeat_penalty": 1, "temperature": 1}).params
    assert type(p.repeat_penalty) is float and type(p.temperature) is float
