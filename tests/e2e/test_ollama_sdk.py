"""The Ollama API through the official `ollama` SDK against a live server."""

from __future__ import annotations

import ollama
import pytest

GREEDY = {"temperature": 0}
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture()
def olla(server):
    return ollama.Client(host=server.url)


def test_list_show_ps_version(olla, server):
    models = olla.list().models
    assert len(models) == 1 and models[0].details.format == "gguf" and models[0].size > 0
    shown = olla.show(models[0].model)
    assert shown.details.quantization_level and "<|im_start|>" in shown.template
    assert shown.capabilities == ["completion"]
    assert olla.ps().models[0].context_length == 2048
    import httpx

    assert httpx.get(server.url + "/api/version").json()["version"]


def test_chat(olla):
    r = olla.chat(model="smol", messages=QUESTION, options={**GREEDY, "num_predict": 10})
    assert r.done and r.done_reason == "length" and r.message.role == "assistant" and r.message.content
    assert r.eval_count == 10 and r.prompt_eval_count > 10 and r.total_duration > 0
    parts = list(olla.chat(model="smol", messages=QUESTION, options={**GREEDY, "num_predict": 10}, stream=True))
    assert "".join(p.message.content for p in parts) == r.message.content
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done
    assert parts[-1].eval_count == 10


def test_chat_stop_and_seed(olla):
    whole = olla.chat(model="smol", messages=QUESTION, options={**GREEDY, "num_predict": 20}).message.content
    word = whole.split()[2]
    r = olla.chat(model="smol", messages=QUESTION, options={**GREEDY, "num_predict": 20, "stop": [word]})
    assert r.done_reason == "stop" and r.message.content == whole[: whole.index(word)]
    a = olla.chat(model="smol", messages=QUESTION, options={"seed": 5, "temperature": 1.0, "num_predict": 8})
    b = olla.chat(model="smol", messages=QUESTION, options={"seed": 5, "temperature": 1.0, "num_predict": 8})
    assert a.message.content == b.message.content


def test_generate(olla):
    r = olla.generate(model="smol", prompt="The capital of France is", raw=True, options={**GREEDY, "num_predict": 6})
    assert r.response and r.done and r.eval_count == 6
    assert len(r.context) == r.prompt_eval_count + 6
    cont = olla.generate(model="smol", prompt="", context=r.context, raw=True, options={**GREEDY, "num_predict": 4})
    assert cont.response
    parts = list(olla.generate(model="smol", prompt="Why is the sky blue?", options={**GREEDY, "num_predict": 6}, stream=True))
    assert parts[-1].done and parts[-1].done_reason == "length"
    templated = olla.generate(model="smol", prompt="Why is the sky blue?", options={**GREEDY, "num_predict": 6})
    assert "".join(p.response for p in parts) == templated.response


def test_errors(olla):
    with pytest.raises(ollama.ResponseError) as info:
        olla.chat(model="smol", messages=[{"role": "user", "content": "x", "images": ["AAAA"]}])
    # a text-only model (no --mmproj): the status llama-server gives media it cannot take, as Ollama does
    assert info.value.status_code == 500 and "image input is not supported" in info.value.error
    with pytest.raises(ollama.ResponseError, match="unknown option"):
        olla.chat(model="smol", messages=QUESTION, options={"bogus": 1})
