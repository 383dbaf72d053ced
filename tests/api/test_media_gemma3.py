"""Images through a Gemma 3 pair: tests/fixtures/vision's tinygemma3 stand-in (random weights, made by
make_tinygemma3.py with llama.cpp's converter), the same text model + projector pair that llama.cpp's
own unit/test_vision_api.py asks for. Plumbing only: what it says about an image means nothing."""

from __future__ import annotations

import hashlib
import pathlib

import pytest
from openai import OpenAI

from tests.conftest import serve
from tests.media_files import b64, data_uri

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "vision"
TEXT = FIXTURES / "tinygemma3-stand-in.f32.gguf"
MMPROJ = FIXTURES / "mmproj-tinygemma3-stand-in.f32.gguf"
# 64x64 input in 8x8 patches, pooled 2x2: 16 embeddings, between <start_of_image> and <end_of_image>
N_IMAGE = 16 + 2


@pytest.fixture(scope="module")
def gemma3(request):
    return serve(request, "gemma3", "-m", str(TEXT), "--mmproj", str(MMPROJ), "-np", "2", "-c", "2048")


@pytest.fixture()
def c(gemma3):
    with gemma3.client(timeout=120) as client:
        yield client


def text(t):
    return {"type": "text", "text": t}


def image(seed):
    return {"type": "image_url", "image_url": {"url": data_uri(seed)}}


def test_the_committed_fixtures_match_their_sums():
    for line in (FIXTURES / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((FIXTURES / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize("path", ["/models", "/v1/models"])
def test_the_model_lists_say_multimodal(c, path):
    assert c.get(path).json()["models"][0]["capabilities"] == ["completion", "multimodal"]


def test_openai_sdk_chat_with_an_image_counts_its_tokens(gemma3):
    client = OpenAI(base_url=gemma3.url + "/v1", api_key="none")

    def usage(*parts):
        r = client.chat.completions.create(model="x", messages=[{"role": "user", "content": [text("What is this:\n"), *parts]}],
                                           max_tokens=2, temperature=0)
        assert r.choices[0].message.role == "assistant" and r.usage.completion_tokens == 2
        return r.usage.prompt_tokens

    one, two = usage(image(1)), usage(image(1), image(2))
    assert two - one == N_IMAGE


def test_content_parts_join_as_llama_server_joins_them(c):
    """Text parts on lines of their own, but no newline before or after an image's marker."""
    def prompt(*parts):
        r = c.post("/apply-template", json={"messages": [{"role": "user", "content": list(parts)}]})
        assert r.status_code == 200, r.text
        return r.json()["prompt"]

    assert prompt(text("What is this:\n"), image(1)) == "<start_of_turn>user\nWhat is this:\n<__media__><end_of_turn>\n<start_of_turn>model\n"
    assert "A\nB<__media__>C\nD<__media__><__media__>E" in prompt(text("A"), text("B"), image(1), text("C"), text("D"),
                                                                   image(2), image(3), text("E"))


@pytest.fixture(scope="module")
def gemma3_embeddings(request):
    return serve(request, "gemma3-embd", "-m", str(TEXT), "--mmproj", str(MMPROJ), "--embeddings", "--pooling", "mean",
                 "-np", "4", "-c", "2048", "-b", "512", "-ub", "512")


@pytest.fixture()
def e(gemma3_embeddings):
    with gemma3_embeddings.client(timeout=120) as client:
        yield client


PROMPT = "What is this: <__media__>\n"


def with_image(seed, prompt=PROMPT):
    return {"prompt_string": prompt, "multimodal_data": [b64(seed)]}


def native(e, *inputs):
    r = e.post("/embeddings", json={"content": list(inputs)})
    assert r.status_code == 200, r.text
    return [x["embedding"] for x in r.json()]


def test_embeddings_of_a_prompt_with_an_image(e):
    """As llama.cpp's test_vision_embeddings: the same image gives the same vector, the prompt without it another;
    inputs with and without media in one request (media ones are decoded alone, the rest packed)."""
    a, b, plain, other, words = native(e, with_image(1), with_image(1), {"prompt_string": PROMPT}, with_image(2, "<__media__>"),
                                       "hello world")
    assert a == b and a != plain and a != other
    assert native(e, "hello world") == [words]  # the text input of a mixed step is untouched by the media ones
    assert native(e, with_image(2, "<__media__>"), "hello world") == [other, words]


def test_openai_embeddings_take_image_parts(e):
    """As llama.cpp's test_vision_embeddings_oai_content: content parts and the native form are the same input."""
    r = e.post("/v1/embeddings", json={"input": [
        {"content": [text("What is this: "), image(1), text("\n")]}, with_image(1), "What is this: \n"]})
    assert r.status_code == 200, r.text
    parts, same, plain = [d["embedding"] for d in r.json()["data"]]
    assert parts == same and parts != plain
    assert r.json()["usage"]["prompt_tokens"] == 25 + 25 + 7  # as llama-server counts them: the image's 18 included


@pytest.mark.parametrize("data", ["malformed", "base64", ""])
def test_embeddings_refuse_bad_media(e, data):
    r = e.post("/embeddings", json={"content": [{"prompt_string": PROMPT, "multimodal_data": [data]}]})
    assert r.status_code == 400, r.text
