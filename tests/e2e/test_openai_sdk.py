"""The OpenAI API through the official `openai` SDK (sync and async) against a live server."""

from __future__ import annotations

import asyncio

import httpx
import openai
import orjson
import pytest

from tests.conftest import serve

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture()
def oai(server):
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


def greedy_chat(oai, **kw):
    return oai.chat.completions.create(model="my-model", messages=kw.pop("messages", QUESTION), temperature=0, **kw)


def test_chat_create_shape(oai):
    r = greedy_chat(oai, max_tokens=16)
    assert r.id.startswith("chatcmpl-") and r.object == "chat.completion"
    assert r.model == "my-model"  # echoed back
    assert r.system_fingerprint
    (choice,) = r.choices
    assert choice.index == 0 and choice.message.role == "assistant"
    assert choice.message.content and choice.finish_reason == "length"
    assert r.usage.completion_tokens == 16
    assert r.usage.prompt_tokens > 10
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.prompt_tokens_details.cached_tokens >= 0
    assert r.model_extra["timings"]["predicted_n"] == 16


def test_chat_stream_matches_non_stream(oai):
    whole = greedy_chat(oai, max_completion_tokens=24).choices[0].message.content
    chunks = list(greedy_chat(oai, max_completion_tokens=24, stream=True, stream_options={"include_usage": True}))
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    usage = chunks[-1]
    assert usage.choices == [] and usage.usage.completion_tokens == 24


def test_chat_stream_wire_format(server):
    body = {"messages": QUESTION, "max_tokens": 4, "temperature": 0, "stream": True}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=60) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    first = orjson.loads(events[0][len("data: "):])
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"]["role"] == "assistant"


def test_stop_string(oai):
    whole = greedy_chat(oai, max_tokens=24).choices[0].message.content
    word = whole.split()[2]
    r = greedy_chat(oai, max_tokens=24, stop=[word])
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == whole[: whole.index(word)]
    assert greedy_chat(oai, max_tokens=24, stop=word).choices[0].message.content == r.choices[0].message.content


def test_n_choices_differ_and_are_indexed(oai):
    r = oai.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Tell me a story."}], n=3, seed=7, temperature=1.0, max_tokens=12
    )
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert len({c.message.content for c in r.choices}) > 1
    assert r.usage.completion_tokens == 36
    again = oai.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Tell me a story."}], n=3, seed=7, temperature=1.0, max_tokens=12
    )
    assert [c.message.content for c in again.choices] == [c.message.content for c in r.choices]


def test_n_choices_stream(oai):
    chunks = list(oai.chat.completions.create(model="m", messages=QUESTION, n=2, temperature=0, max_tokens=8, stream=True))
    texts = {0: "", 1: ""}
    for c in chunks:
        for ch in c.choices:
            texts[ch.index] += ch.delta.content or ""
    assert texts[0] == texts[1] != ""  # greedy: both choices alike
    assert sum(1 for c in chunks for ch in c.choices if ch.finish_reason) == 2


def test_logprobs(oai):
    r = greedy_chat(oai, max_tokens=6, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == 6
    for tok in content:
        assert tok.logprob <= 0 and len(tok.top_logprobs) == 3
        assert bytes(tok.bytes).decode("utf-8", "ignore") == tok.token
        assert tok.top_logprobs[0].logprob >= tok.top_logprobs[1].logprob
        assert tok.token == tok.top_logprobs[0].token  # greedy picks the most likely token
    assert "".join(t.token for t in content) == r.choices[0].message.content
    plain = greedy_chat(oai, max_tokens=3, logprobs=True)
    assert all(t.top_logprobs == [] for t in plain.choices[0].logprobs.content)


def test_logit_bias_bans_a_token(oai, client):
    first = greedy_chat(oai, max_tokens=1, logprobs=True).choices[0].logprobs.content[0]
    tok_id = first.model_extra["id"]
    r = greedy_chat(oai, max_tokens=1, logprobs=True, logit_bias={str(tok_id): -100})
    assert r.choices[0].logprobs.content[0].model_extra["id"] != tok_id


def test_native_fields_as_extensions(oai):
    r = oai.chat.completions.create(model="m", messages=QUESTION, max_tokens=8, extra_body={"top_k": 1, "n_predict": 3})
    assert r.usage.completion_tokens == 3  # n_predict wins over max_tokens, as in llama-server


def test_prefill_continues_final_assistant_message(client):
    msgs = QUESTION + [{"role": "assistant", "content": "The answer is"}]
    prompt = client.post("/apply-template", json={"messages": msgs}).json()["prompt"]
    assert prompt.endswith("<|im_start|>assistant\nThe answer is")


def test_content_parts_joined(client):
    msgs = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    prompt = client.post("/apply-template", json={"messages": msgs}).json()["prompt"]
    assert "<|im_start|>user\na\nb<|im_end|>" in prompt


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"n": 0}, '"n"'),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "role"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"temperature": "hot"}, "temperature"),
    ],
)
def test_bad_requests(oai, kw, needle):
    kw = {"model": "m", "messages": QUESTION, **kw}
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(**kw)
    assert info.value.status_code == 400
    assert needle in info.value.body["message"]
    assert info.value.body["type"] == "invalid_request_error"


def test_image_on_a_text_only_model_is_refused_as_llama_server_does(oai):
    """llama-server answers media it cannot read with a 500 naming the missing projector (its tests check that)."""
    image = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]
    with pytest.raises(openai.InternalServerError) as info:
        oai.chat.completions.create(model="m", messages=[{"role": "user", "content": image}])
    assert info.value.status_code == 500
    assert "image input is not supported" in info.value.body["message"] and "--mmproj" in info.value.body["message"]
    assert info.value.body["type"] == "server_error"


def test_completions_create(oai):
    r = oai.completions.create(model="m", prompt="The capital of France is", max_tokens=8, temperature=0)
    assert r.id.startswith("cmpl-") and r.object == "text_completion"
    text = r.choices[0].text
    assert text and r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 8
    streamed = list(oai.completions.create(model="m", prompt="The capital of France is", max_tokens=8, temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in streamed) == text
    assert [c.choices[0].finish_reason for c in streamed][-1] == "length"


def test_completions_prompts_echo_and_n(oai):
    r = oai.completions.create(model="m", prompt=["The sky is", "Water is"], n=2, echo=True, max_tokens=4, temperature=0)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert r.choices[0].text.startswith("The sky is") and r.choices[2].text.startswith("Water is")
    assert r.choices[0].text == r.choices[1].text


def test_completions_token_prompt_and_logprobs(oai, client):
    tokens = client.post("/tokenize", json={"content": "The capital of France is"}).json()["tokens"]
    r = oai.completions.create(model="m", prompt=tokens, max_tokens=3, temperature=0, logprobs=2)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 3
    assert all(len(t) <= 2 for t in lp.top_logprobs)
    assert "".join(lp.tokens) == r.choices[0].text
    assert lp.text_offset[0] == 0 and lp.text_offset[1] == len(lp.tokens[0])


def test_completions_bad_requests(oai):
    with pytest.raises(openai.BadRequestError, match="prompt"):
        oai.completions.create(model="m", prompt=None, max_tokens=1)
    with pytest.raises(openai.BadRequestError, match="logprobs"):
        oai.completions.create(model="m", prompt="x", max_tokens=1, logprobs=9)


def test_async_client_concurrent(server):
    async def main():
        async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as client:
            prompts = ["Name a fruit.", "Name a color.", "Name an animal.", "Name a city."]
            calls = [
                client.chat.completions.create(model="m", messages=[{"role": "user", "content": p}], temperature=0, max_tokens=10)
                for p in prompts
            ]
            together = await asyncio.gather(*calls)
            alone = [
                await client.chat.completions.create(model="m", messages=[{"role": "user", "content": p}], temperature=0, max_tokens=10)
                for p in prompts
            ]
            stream = await client.chat.completions.create(model="m", messages=QUESTION, temperature=0, max_tokens=5, stream=True)
            streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            return together, alone, streamed

    together, alone, streamed = asyncio.run(main())
    assert [r.choices[0].message.content for r in together] == [r.choices[0].message.content for r in alone]
    assert streamed


def test_models_list(oai):
    models = oai.models.list()
    assert models.data and models.data[0].id


@pytest.fixture(scope="module")
def builtin_server(request):
    return serve(request, "builtin", "-np", "1", "-c", "1024", "--no-jinja", "--chat-template", "llama3")


def test_builtin_template_without_jinja(builtin_server):
    with builtin_server.client() as c:
        prompt = c.post("/apply-template", json={"messages": QUESTION}).json()["prompt"]
        assert prompt.startswith("<|start_header_id|>user<|end_header_id|>")
        assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
        r = c.post("/v1/chat/completions", json={"messages": QUESTION, "max_tokens": 2})
        assert r.status_code == 200
        # without jinja, tools are described in a generic system prompt (llama-server refuses them)
        tools = [{"type": "function", "function": {"name": "lookup_capital", "parameters": {"type": "object"}}}]
        prompt = c.post("/apply-template", json={"messages": QUESTION, "tools": tools}).json()["prompt"]
        assert "lookup_capital" in prompt and prompt.startswith("<|start_header_id|>system<|end_header_id|>")


def test_parse_with_pydantic_model(oai):
    from pydantic import BaseModel, Field

    class City(BaseModel):
        name: str = Field(max_length=20)
        country: str = Field(max_length=20)
        population_millions: int = Field(ge=0, le=40)

    r = oai.chat.completions.parse(
        model="m", messages=[{"role": "user", "content": "Describe Paris as JSON."}], response_format=City,
        temperature=0, max_tokens=120,
    )
    parsed = r.choices[0].message.parsed
    assert isinstance(parsed, City) and parsed.name
    assert 0 <= parsed.population_millions <= 40


def test_response_format_json_object(oai):
    import json

    r = oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "Give me a JSON object."}],
                                    response_format={"type": "json_object"}, temperature=0, max_tokens=80)
    text = r.choices[0].message.content
    assert text.lstrip().startswith("{")  # unconstrained, SmolLM2 answers in prose
    if r.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(text), dict)
