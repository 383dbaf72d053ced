"""Request → Task translation of the native format, with a stand-in tokenizer (no model)."""

import dataclasses
import math

import pytest

from llamaserve.config import SamplingDefaults
from llamaserve.engine.types import SpecParams
from llamaserve.errors import InvalidRequest
from llamaserve.protocol import native, slots


def fake_tokenize(text, add_special):
    return ([1] if add_special else []) + [ord(c) for c in text]


def prompts(p):
    return native.tokenize_prompts(p, fake_tokenize, 1000)


def test_prompt_forms():
    assert prompts("ab") == [[1, 97, 98]]
    assert prompts([5, 6]) == [[5, 6]]
    assert prompts(["a", 5, "b"]) == [[1, 97, 5, 98]]
    assert prompts(["a", "b"]) == [[1, 97], [1, 98]]
    assert prompts([[5, 6], "c"]) == [[5, 6], [1, 99]]
    # llama-server's object form, alone, mixed or in a batch
    assert prompts({"prompt_string": "ab"}) == [[1, 97, 98]]
    assert prompts({"prompt_string": ["a", 5]}) == [[1, 97, 5]]
    assert prompts([[5, 6], {"prompt_string": "c"}]) == [[5, 6], [1, 99]]


def test_multimodal_prompt_on_a_text_only_model_is_refused():
    from llamaserve.errors import MediaUnsupported

    with pytest.raises(MediaUnsupported, match="not supported"):
        prompts({"prompt_string": "a <__media__>", "multimodal_data": ["AA=="]})


@pytest.mark.parametrize("bad", [None, [], 5, {"x": 1}, {"prompt_string": 5}, [True], [[1], 2.5], [1, 5000]])
def test_bad_prompts(bad):
    with pytest.raises(InvalidRequest):
        prompts(bad)


def test_samplers_names_aliases_and_letters():
    assert native.parse_samplers(["top-k", "nucleus", "temp", "typical_p", "minp"]) == ["top_k", "top_p", "temperature", "typ_p", "min_p"]
    assert native.parse_samplers("edkypmxt") == ["penalties", "dry", "top_k", "typ_p", "top_p", "min_p", "xtc", "temperature"]
    with pytest.raises(InvalidRequest):
        native.parse_samplers("kz")


def test_logit_bias_forms():
    assert native.parse_logit_bias([[5, 1.5], [6, False]], fake_tokenize, 100) == [(5, 1.5), (6, -math.inf)]
    assert native.parse_logit_bias({"7": -2}, fake_tokenize, 100) == [(7, -2.0)]
    assert native.parse_logit_bias([["ab", 3]], fake_tokenize, 100) == [(97, 3.0), (98, 3.0)]
    with pytest.raises(InvalidRequest):
        native.parse_logit_bias([[500, 1]], fake_tokenize, 100)
    with pytest.raises(InvalidRequest):
        native.parse_logit_bias([[5, "x"]], fake_tokenize, 100)


def test_task_defaults_and_overrides():
    defaults = SamplingDefaults(n_predict=50, temperature=0.3)
    req = native.parse_request({"prompt": "x", "n_predict": 200, "stop": "END", "seed": -1})
    task = native.build_tasks(req, [[1, 2]], defaults, fake_tokenize, 100)[0]
    assert task.n_predict == 200  # -n is only the default, as in llama-server
    assert native.build_tasks(native.parse_request({"prompt": "x", "n_predict": -1}), [[1]], defaults, fake_tokenize, 100)[0].n_predict == 50
    capped = SamplingDefaults(n_predict=50, max_predict=8)
    for asked in (200, -1, None):
        body = {"prompt": "x"} if asked is None else {"prompt": "x", "n_predict": asked}
        assert native.build_tasks(native.parse_request(body), [[1]], capped, fake_tokenize, 100)[0].n_predict == 8
    assert task.stop == ["END"] and task.params.seed == 0xFFFFFFFF and task.params.temperature == 0.3
    req = native.parse_request({"prompt": "x", "max_tokens": 7, "temperature": 0})
    task = native.build_tasks(req, [[1]], SamplingDefaults(), fake_tokenize, 100)[0]
    assert task.n_predict == 7 and task.params.is_greedy


def test_type_errors_name_the_field():
    with pytest.raises(InvalidRequest, match="top_k"):
        native.parse_request({"prompt": "x", "top_k": "many"})


def test_select_fields():
    res = {"a": 1, "b": {"c": 2}}
    assert native.select_fields(res, ["a", "b/c", "missing"]) == {"a": 1, "b/c": 2}


def test_lora_field_and_body():
    def task(body):
        return native.build_tasks(native.parse_request({"prompt": "x", **body}), [[1]], SamplingDefaults(), fake_tokenize, 100)[0]

    assert task({}).lora is None and task({"lora": []}).lora is None  # the server's scales
    assert task({"lora": [{"id": 1, "scale": 0.5}, {"id": 0, "scale": 2}, {"id": 1, "scale": 0}]}).lora == {1: 0.0, 0: 2.0}
    settings = native.generation_settings(task({"lora": [{"id": 1, "scale": 0.5}]}), "m")
    assert settings["lora"] == [{"id": 1, "scale": 0.5}]  # what was asked, until the engine resolves it
    t = task({})
    t.lora_scales = (1.0, 0.0)
    assert native.generation_settings(t, "m")["lora"] == [{"id": 0, "scale": 1.0}, {"id": 1, "scale": 0.0}]
    for bad in ("x", [{"id": 0}], [{"scale": 1}], [{"id": -1, "scale": 1}], [{"id": 0, "scale": float("inf")}], [[0, 1]]):
        with pytest.raises(InvalidRequest, match="lora"):
            native.parse_request({"prompt": "x", "lora": bad})
    assert native.parse_lora_scales([{"id": 0, "scale": 1}, {"id": 2, "scale": 0.25, "extra": True}]) == {0: 1.0, 2: 0.25}
    assert native.parse_lora_scales([]) == {}
    for bad in ({"id": 0, "scale": 1}, None, [{"id": "0", "scale": 1}], [{"id": 0, "scale": True}]):
        with pytest.raises(InvalidRequest):
            native.parse_lora_scales(bad)


@pytest.mark.parametrize("name", ["slot1.bin", "a", "état ü.bin", "x.y.z", ".hidden", "a b", "x" * 255])
def test_slot_filenames_accepted(name):
    assert slots.valid_slot_filename(name)


@pytest.mark.parametrize("name", [
    "", ".", "..", "../x", "a/../b", "a..b", "/abs", "a/b", "a\\b", "c:x", "a*", "a?", 'a"', "a<", "a>", "a|",
    " lead", "trail ", "trail.", "tab\tx", "nul\x00", "del\x7f", "c1\x85", "\ufeffbom", "full\uff0estop",
    "div\u2215slash", "set\u2216minus", "rep\ufffd", "x" * 256, "é" * 128,
])
def test_slot_filenames_refused(name):
    assert not slots.valid_slot_filename(name)


def test_default_stop_strings_apply_when_a_request_gives_none():
    defaults = SamplingDefaults(stop=["\n\n"])
    task = native.build_tasks(native.parse_request({"prompt": "x"}), [[1]], defaults, lambda s, a: [], 10)[0]
    assert task.stop == ["\n\n"]
    for given in (["END"], "END"):
        task = native.build_tasks(native.parse_request({"prompt": "x", "stop": given}), [[1]], defaults, lambda s, a: [], 10)[0]
        assert task.stop == ["END"]


def test_props_request_refuses_unknown_and_mistyped_fields():
    assert native.parse_model(native.PropsRequest, {"system_prompt": "Be brief.", "stop": ["x"]}).stop == ["x"]
    for body in ({"bogus": 1}, {"system_prompt": 5}, {"stop": "x"}, {"stop": [None]}):
        with pytest.raises(InvalidRequest):
            native.parse_model(native.PropsRequest, body)


def test_speculative_fields_flat_and_nested_override_the_servers():
    server = SpecParams(types=("ngram-simple", "draft-simple"), n_max=3, n_min=0, p_min=0.0)

    def spec(body, base=server):
        req = native.parse_request({"prompt": "x", **body})
        return native.build_tasks(req, [[1]], SamplingDefaults(), fake_tokenize, 100, spec=base)[0].spec

    assert spec({}) is server
    assert spec({}, None) is None  # the engine's then
    assert spec({"speculative.n_max": 8, "speculative.p_min": 0.5}) == SpecParams(server.types, n_max=8, p_min=0.5)
    assert spec({"speculative": {"n_min": 2, "type": "draft-simple"}}) == SpecParams(("draft-simple",), n_min=2)
    # the flat spelling wins over the object; several types are tried in llama-server's order
    assert spec({"speculative": {"n_max": 4}, "speculative.n_max": 5}).n_max == 5
    assert spec({"speculative.type": "draft-simple,ngram-mod"}).types == ("ngram-mod", "draft-simple")
    assert spec({"speculative.type": "none"}).types == ()
    assert spec({"speculative.ngram_size_n": 4, "speculative.ngram_size_m": 16}, None) == \
        SpecParams(ngram_size_n=4, ngram_size_m=16)
    task = native.build_tasks(native.parse_request({"prompt": "x"}), [[1]], SamplingDefaults(), fake_tokenize, 100, spec=server)[0]
    assert native.generation_settings(task, "m")["speculative.types"] == "ngram-simple,draft-simple"
    assert native.generation_settings(dataclasses.replace(task, spec=None), "m")["speculative.types"] == "none"
    for bad in ({"speculative.n_max": -1}, {"speculative.p_min": 2}, {"speculative": {"n_min": "a"}},
                {"speculative.type": "ngram-fancy"}, {"speculative": 3}, {"speculative.type": 5}):
        with pytest.raises(InvalidRequest, match="speculative"):
            spec(bad)
