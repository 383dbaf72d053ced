"""The Anthropic Messages API through the official `anthropic` SDK against a live server."""

from __future__ import annotations

import anthropic
import httpx
import pytest

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0}  # the SDK no longer types sampling fields; they travel as extra body fields


@pytest.fixture()
def claude(server):
    with anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0) as client:
        yield client


def test_create(claude):
    m = claude.messages.create(model="claude-x", max_tokens=12, messages=QUESTION, extra_body=GREEDY)
    assert m.id.startswith("msg_") and m.type == "message" and m.role == "assistant"
    assert m.model == "claude-x"
    assert m.content[0].type == "text" and m.content[0].text
    assert m.stop_reason == "max_tokens" and m.stop_sequence is None
    assert m.usage.output_tokens == 12
    assert m.usage.input_tokens + m.usage.cache_read_input_tokens > 10
    brief = claude.messages.create(model="m", max_tokens=40, messages=QUESTION, system="Be brief.", extra_body=GREEDY)
    assert brief.stop_reason == "end_turn" and brief.usage.output_tokens < 40


def test_stream_matches_create(claude):
    whole = claude.messages.create(model="m", max_tokens=16, messages=QUESTION, extra_body=GREEDY).content[0].text
    with claude.messages.stream(model="m", max_tokens=16, messages=QUESTION, extra_body=GREEDY) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert final.content[0].text == whole
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_start" in kinds and "content_block_stop" in kinds and "message_delta" in kinds
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 16


def test_stream_wire_events(server):
    body = {"model": "m", "max_tokens": 3, "messages": QUESTION, "stream": True}
    with httpx.stream("POST", server.url + "/v1/messages", json=body, timeout=60) as r:
        names = [line[len("event: "):] for line in r.iter_lines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_stop_sequence(claude):
    whole = claude.messages.create(model="m", max_tokens=24, messages=QUESTION, extra_body=GREEDY).content[0].text
    word = whole.split()[2]
    m = claude.messages.create(model="m", max_tokens=24, messages=QUESTION, stop_sequences=[word], extra_body=GREEDY)
    assert m.stop_reason == "stop_sequence" and m.stop_sequence == word
    assert m.content[0].text == whole[: whole.index(word)]


def test_content_blocks_and_multi_turn(claude):
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Hi! How can I help?"}]},
        {"role": "user", "content": "Name a color."},
    ]
    m = claude.messages.create(model="m", max_tokens=8, messages=messages, extra_body=GREEDY)
    assert m.content[0].text


def test_count_tokens(claude, client):
    counted = claude.messages.count_tokens(model="m", messages=QUESTION, system="Be brief.").input_tokens
    prompt = client.post("/apply-template", json={"messages": [{"role": "system", "content": "Be brief."}, *QUESTION]}).json()["prompt"]
    assert counted == len(client.post("/tokenize", json={"content": prompt}).json()["tokens"])


IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}


@pytest.mark.parametrize("content", [
    [IMAGE, {"type": "text", "text": "What is this?"}],
    [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "File: a.png"}, IMAGE]}],
])
def test_image_on_a_text_only_model_is_refused_as_llama_server_does(claude, content):
    """A 500 naming the missing projector, as llama-server answers (its tests check that), also for an
    image inside a tool result, which is never dropped silently."""
    messages = [{"role": "user", "content": content}]
    if content[0]["type"] == "tool_result":
        messages = [{"role": "user", "content": "Read a.png"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "read", "input": {}}]},
                    *messages]
    with pytest.raises(anthropic.InternalServerError) as info:
        claude.messages.create(model="m", max_tokens=4, messages=messages)
    assert info.value.body["type"] == "error"
    assert "image input is not supported" in info.value.body["error"]["message"]


def test_empty_messages_are_accepted_as_llama_server_does(claude):
    r = claude.messages.create(model="m", max_tokens=4, messages=[])
    assert r.type == "message" and r.usage.output_tokens > 0


def test_errors_use_anthropic_envelope(claude, server):
    r = httpx.post(server.url + "/v1/messages", json={"messages": QUESTION}, timeout=30)  # no max_tokens
    assert r.status_code == 400 and "max_tokens" in r.json()["error"]["message"]
    assert r.json()["type"] == "error"


def test_headers_tolerated(server):
    r = httpx.post(
        server.url + "/v1/messages",
        json={"model": "m", "max_tokens": 2, "messages": QUESTION},
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01", "anthropic-beta": "tools-2024-04-04"},
        timeout=60,
    )
    assert r.status_code == 200
