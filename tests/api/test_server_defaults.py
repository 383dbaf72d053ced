"""Server-wide defaults from the command line acting on requests through HTTP, on real servers:
--ignore-eos, -n, -sp, -v, --no-cache-prompt (one server), -l, --repeat-penalty, --samplers (another),
--grammar-file (a third); on every route that samples, with a request's own field winning."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import ONE_THREAD, serve

# SmolLM2's chat format by hand: its answer is a word or two, then <|im_end|> (an end-of-generation token)
CHAT_PROMPT = "<|im_start|>user\nAnswer with one word. Is the sky blue?<|im_end|>\n<|im_start|>assistant\n"
MESSAGES = [{"role": "user", "content": "Answer with one word. Is the sky blue?"}]
EOG = ("0", "2", "4")  # <|endoftext|>, <|im_end|>, <reponame>
IM_START = 1  # <|im_start|>, a special token


def _server(request, name, *args):
    return serve(request, name, "-np", "1", "-c", "512", "--temp", "0", *args, *ONE_THREAD)


@pytest.fixture(scope="module")
def eager(request):
    """--ignore-eos -n 16 -sp -v --no-cache-prompt"""
    with _server(request, "eager", "--ignore-eos", "-n", "16", "-sp", "-v", "--no-cache-prompt").client() as c:
        yield c


@pytest.fixture(scope="module")
def biased(request):
    """-l bans every end-of-generation token; --repeat-penalty, --samplers; -n 24"""
    bans = [arg for t in EOG for arg in ("-l", f"{t}-inf")]
    srv = _server(request, "biased", *bans, "--repeat-penalty", "1.25", "--samplers", "top_k;temperature", "-n", "24")
    with srv.client() as c:
        yield c


@pytest.fixture(scope="module")
def grammared(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grammar")
    path = tmp / "ab.gbnf"
    path.write_text('root ::= ("ab")+\n')
    srv = serve(request, tmp, "-np", "1", "-c", "512", "--temp", "0", "-n", "12", "--grammar-file", str(path), *ONE_THREAD)
    with srv.client() as c:
        yield c


def complete(client, **body):
    r = client.post("/completion", json={"prompt": CHAT_PROMPT, **body})
    assert r.status_code == 200, r.text
    return r.json()


# --- --ignore-eos, -n, -sp, -v, --no-cache-prompt ---

def test_ignore_eos_default_runs_to_the_server_limit(eager):
    out = complete(eager)
    assert (out["tokens_predicted"], out["stop_type"]) == (16, "limit")
    assert out["generation_settings"]["ignore_eos"] is True
    # shown as llama-server shows it: a -inf (null) bias for each end-of-generation token
    assert sorted(b["token"] for b in out["generation_settings"]["logit_bias"]) == [int(t) for t in EOG]
    assert {b["bias"] for b in out["generation_settings"]["logit_bias"]} == {None}
    own = complete(eager, ignore_eos=False)  # the request's field wins: the model ends its answer
    assert own["stop_type"] == "eos" and own["tokens_predicted"] < 16
    assert own["generation_settings"]["logit_bias"] == []


def test_special_tokens_are_written_with_sp(eager, biased):
    # -sp: the end-of-generation token's text is part of the output, as llama-server writes it
    assert complete(eager, ignore_eos=False)["content"].endswith("<|im_end|>")
    forced = {"n_predict": 3, "logit_bias": [[IM_START, 100]], "ignore_eos": False}
    assert complete(eager, **forced)["content"] == "<|im_start|>" * 3
    # without -sp, special tokens have no text
    plain = complete(biased, **forced)
    assert plain["content"] == "" and plain["tokens_predicted"] == 3


def test_no_cache_prompt_is_the_default_of_the_field(eager):
    prompt = "A long enough prompt about the weather in the mountains during the month of May"
    complete(eager, prompt=prompt, cache_prompt=True, n_predict=1)
    assert complete(eager, prompt=prompt, cache_prompt=True, n_predict=1)["timings"]["cache_n"] > 0
    assert complete(eager, prompt=prompt, n_predict=1)["timings"]["cache_n"] == 0


def test_verbose_adds_the_native_response(eager):
    r = eager.post("/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 4})
    body = r.json()
    verbose = body["__verbose"]
    assert verbose["content"] == body["choices"][0]["message"]["content"]
    assert verbose["generation_settings"]["n_predict"] == 4 and verbose["tokens_predicted"] == 4
    assert "__verbose" not in eager.post("/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 4,
                                                                       "verbose": False}).json()
    assert "__verbose" not in complete(eager, n_predict=2)  # native responses never carry it
    out = eager.post("/v1/completions", json={"prompt": "Hello", "max_tokens": 3}).json()
    assert out["__verbose"]["prompt"] == "Hello" and out["__verbose"]["content"] == out["choices"][0]["text"]


def test_verbose_streamed_completions_chunks(eager):
    with eager.stream("POST", "/v1/completions", json={"prompt": "Hello", "max_tokens": 3, "stream": True}) as r:
        chunks = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    assert chunks and all("__verbose" in c for c in chunks)
    assert chunks[-1]["__verbose"]["stop"] is True and chunks[0]["__verbose"]["stop"] is False


# --- -l, --repeat-penalty, --samplers, on every route ---

def test_logit_bias_default_bans_eos_until_a_request_brings_its_own(biased):
    out = complete(biased)
    assert (out["stop_type"], out["tokens_predicted"]) == ("limit", 24)
    assert {"bias": None, "token": 2} in out["generation_settings"]["logit_bias"]
    own = complete(biased, logit_bias=[])  # a request's biases replace the server's, as in llama-server
    assert own["stop_type"] == "eos"


def test_sampling_defaults_show_in_generation_settings(biased):
    settings = complete(biased, n_predict=1)["generation_settings"]
    assert (settings["repeat_penalty"], settings["samplers"]) == (1.25, ["top_k", "temperature"])
    settings = complete(biased, n_predict=1, repeat_penalty=1.0, samplers=["min_p"])["generation_settings"]
    assert (settings["repeat_penalty"], settings["samplers"]) == (1.0, ["min_p"])


def test_defaults_reach_the_chat_routes(biased):
    chat = biased.post("/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 20}).json()
    assert chat["choices"][0]["finish_reason"] == "length"
    chat = biased.post("/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 20, "logit_bias": {}}).json()
    assert chat["choices"][0]["finish_reason"] == "stop"
    msg = biased.post("/v1/messages", json={"model": "m", "messages": MESSAGES, "max_tokens": 20}).json()
    assert msg["stop_reason"] == "max_tokens"
    ollama = biased.post("/api/chat", json={"model": "m", "messages": MESSAGES, "stream": False,
                                            "options": {"num_predict": 20}}).json()
    assert ollama["done_reason"] == "length"
    resp = biased.post("/v1/responses", json={"model": "m", "input": MESSAGES[0]["content"], "max_output_tokens": 20}).json()
    assert resp["usage"]["output_tokens"] == 20


# --- --grammar-file ---

def test_grammar_default_constrains_requests_without_their_own(grammared):
    assert re.fullmatch(r"(ab)+a?", complete(grammared)["content"])
    chat = grammared.post("/v1/chat/completions", json={"messages": MESSAGES}).json()
    assert re.fullmatch(r"(ab)+a?", chat["choices"][0]["message"]["content"])
    # the request's own constraint replaces it: a grammar, a JSON schema, an OpenAI response_format
    assert re.fullmatch(r"(cd)+c?", complete(grammared, grammar='root ::= ("cd")+')["content"])
    assert complete(grammared, json_schema={"type": "boolean"})["content"] in ("true", "false")
    chat = grammared.post("/v1/chat/completions", json={
        "messages": MESSAGES, "max_tokens": 40,
        "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "boolean"}}}}).json()
    assert chat["choices"][0]["message"]["content"] in ("true", "false")
