"""Images from the official SDKs (openai, anthropic, ollama) to a server with a projector, as their users
send them: an image_url data URI, an Anthropic base64 image block, Ollama's images list (raw bytes, which
the SDK encodes itself)."""

from __future__ import annotations

import anthropic
import ollama
import openai
import pytest

from tests.conftest import serve, shared_model
from tests.media_files import b64, data_uri, png


@pytest.fixture(scope="module")
def mm_server(request):
    return serve(request, "mm-sdk", "-np", "2", "-c", "4096", "--mmproj", shared_model("synthetic-mmproj-smollm2.f32.gguf"))


def test_openai_sdk_sends_an_image(mm_server):
    with openai.OpenAI(base_url=mm_server.url + "/v1", api_key="unused", max_retries=0) as client:
        def ask(seed):
            return client.chat.completions.create(model="m", max_tokens=1, temperature=0, logprobs=True, top_logprobs=2,
                                                  messages=[{"role": "user", "content": [
                                                      {"type": "text", "text": "Describe it."},
                                                      {"type": "image_url", "image_url": {"url": data_uri(seed)}}]}])
        a, b = ask(1), ask(2)
        text_only = client.chat.completions.create(model="m", max_tokens=1, messages=[{"role": "user", "content": "Describe it."}])
        assert a.usage.prompt_tokens >= text_only.usage.prompt_tokens + 16
        assert a.choices[0].logprobs.content[0].logprob != b.choices[0].logprobs.content[0].logprob
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="m", max_tokens=1, messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,bm90IGFuIGltYWdl"}}]}])
        stream = client.responses.create(model="m", max_output_tokens=3, stream=True, input=[{"role": "user", "content": [
            {"type": "input_text", "text": "Describe it."}, {"type": "input_image", "image_url": data_uri(3)}]}])
        assert any(e.type == "response.completed" for e in stream)


def test_anthropic_sdk_sends_an_image_block(mm_server):
    with anthropic.Anthropic(base_url=mm_server.url, api_key="unused", max_retries=0) as client:
        block = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(4)}}
        messages = [{"role": "user", "content": [block, {"type": "text", "text": "Describe it."}]}]
        msg = client.messages.create(model="m", max_tokens=3, messages=messages)
        counted = client.messages.count_tokens(model="m", messages=messages)
        assert msg.content[0].type == "text"
        assert counted.input_tokens == msg.usage.input_tokens + (msg.usage.cache_read_input_tokens or 0) >= 16
        with pytest.raises(anthropic.BadRequestError):
            client.messages.create(model="m", max_tokens=3, messages=[{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "bm90IGFuIGltYWdl"}}]}])


def test_ollama_sdk_sends_images(mm_server):
    client = ollama.Client(host=mm_server.url)
    r = client.chat(model="m", options={"num_predict": 3, "temperature": 0},
                    messages=[{"role": "user", "content": "Describe it.", "images": [png(5)]}])
    assert r.message.content and r.prompt_eval_count >= 16
    g = client.generate(model="m", prompt="Describe it.", images=[png(5)], options={"num_predict": 3, "temperature": 0})
    assert g.response and g.prompt_eval_count >= 16
