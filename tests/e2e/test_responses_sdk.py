"""The OpenAI Responses API (stateless) through the official `openai` SDK against a live server."""

from __future__ import annotations

import openai
import pytest

GREEDY = {"temperature": 0}


@pytest.fixture()
def oai(server):
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


def test_create(oai):
    r = oai.responses.create(model="m", input="What is the capital of France?", max_output_tokens=12, **GREEDY)
    assert r.id.startswith("resp_") and r.object == "response"
    assert r.output[0].type == "message" and r.output[0].content[0].type == "output_text"
    assert r.output_text == r.output[0].content[0].text != ""
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    assert r.usage.output_tokens == 12 and r.usage.total_tokens == r.usage.input_tokens + 12


def test_stream_sequence_numbers_and_text(oai):
    whole = oai.responses.create(model="m", input="Say hello.", max_output_tokens=10, **GREEDY).output_text
    with oai.responses.stream(model="m", input=[{"role": "user", "content": "Say hello."}], max_output_tokens=10, **GREEDY) as stream:
        events = list(stream)
        final = stream.get_final_response()
    seq = [e.sequence_number for e in events]
    assert seq == list(range(len(seq)))
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"]
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert len({e.item_id for e in deltas}) == 1 and deltas[0].item_id == final.output[0].id
    assert "".join(e.delta for e in deltas) == whole == final.output_text


def test_input_items_with_function_call_history(oai):
    r = oai.responses.create(
        model="m",
        input=[
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "What is the weather in Paris?"}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "Sunny, 21 C"},
        ],
        tools=[{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        tool_choice="none",
        max_output_tokens=8,
        **GREEDY,
    )
    assert r.output_text


def test_input_tokens(oai, client):
    n = oai.responses.input_tokens.count(model="m", input="hello", instructions="Be brief.").input_tokens
    prompt = client.post("/apply-template", json={"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]}).json()["prompt"]
    assert n == len(client.post("/tokenize", json={"content": prompt}).json()["tokens"])
    r = client.post("/v1/chat/completions/input_tokens", json={"messages": [{"role": "user", "content": "hello"}]})
    assert r.status_code == 200 and r.json()["input_tokens"] > 1


def test_an_image_on_a_text_only_model_is_refused(oai):
    with pytest.raises(openai.InternalServerError, match="image input is not supported"):  # llama-server's 500
        oai.responses.create(model="m", max_output_tokens=2, input=[{"type": "message", "role": "user", "content": [
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}]}])


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"previous_response_id": "resp_123"}, "stateless"),
        ({"tools": [{"type": "web_search"}]}, "function"),
        ({"input": [{"type": "message", "role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]}, "input_image"),
    ],
)
def test_bad_requests(oai, kw, needle):
    kw = {"model": "m", "input": "hi", "max_output_tokens": 2, **kw}
    with pytest.raises(openai.BadRequestError) as info:
        oai.responses.create(**kw)
    assert needle in info.value.body["message"]
