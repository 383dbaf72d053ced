"""Audio through a Qwen2-Audio pair: tests/fixtures/audio's tinyqwen2audio (random weights, made by
make_tiny_audio.py with llama.cpp's converter; projector type "qwen2a"). Plumbing only: what it says about
a sound means nothing. llama-server on the same pair counts the same prompt tokens and answers the same
greedy text (checked by hand when the fixture was made)."""

from __future__ import annotations

import base64
import hashlib
import pathlib

import pytest
from openai import OpenAI

from tests.conftest import serve
from tests.helpers import assert_error
from tests.media_files import b64, data_uri, wav

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "audio"
TEXT = FIXTURES / "tinyqwen2audio.f32.gguf"
MMPROJ = FIXTURES / "mmproj-tinyqwen2audio.f32.gguf"
MP3 = FIXTURES / "tone-440hz.mp3"
VISION = FIXTURES.parent / "vision"
# libmtmd pads a clip to 30 s of mel frames: 3000 frames, 1500 encoder positions, pooled to 750 embeddings,
# between <|audio_bos|> and <|audio_eos|>
N_AUDIO = 750 + 2
PROMPT = "<|im_start|>user\nWhat is this?<__media__><|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def audio_server(request):
    return serve(request, "qwen2audio", "-m", str(TEXT), "--mmproj", str(MMPROJ), "-np", "1", "-c", "4096")


@pytest.fixture()
def c(audio_server):
    with audio_server.client(timeout=120) as client:
        yield client


def audio(data: bytes, fmt: str = "wav"):
    return {"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode(), "format": fmt}}


def chat(c, *parts, status=200, **extra):
    r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, *parts]}], "max_tokens": 4, "temperature": 0, **extra})
    assert r.status_code == status, r.text
    return r.json()


def completion(c, clip: bytes, **extra):
    r = c.post("/completion", json={"prompt": {"prompt_string": PROMPT, "multimodal_data": [base64.b64encode(clip).decode()]},
                                    "n_predict": 2, "temperature": 0, "n_probs": 5, "cache_prompt": False, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def test_the_committed_fixtures_match_their_sums():
    for line in (FIXTURES / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((FIXTURES / name).read_bytes()).hexdigest() == digest, name


def test_props_and_the_model_lists_say_audio(c):
    assert c.get("/props").json()["modalities"] == {"vision": False, "video": False, "audio": True}
    assert c.get("/v1/models").json()["models"][0]["capabilities"] == ["completion", "multimodal"]


def test_openai_sdk_chat_with_a_wav_counts_its_tokens(audio_server):
    client = OpenAI(base_url=audio_server.url + "/v1", api_key="none")

    def ask(*parts):
        r = client.chat.completions.create(model="x", messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is this?"}, *parts]}], max_tokens=2, temperature=0)
        assert r.choices[0].message.role == "assistant" and r.usage.completion_tokens == 2
        return r.usage

    plain, one = ask(), ask(audio(wav(440)))
    assert one.prompt_tokens - plain.prompt_tokens == N_AUDIO
    assert one.prompt_tokens == 771  # as llama-server counts it
    again = ask(audio(wav(440)))
    assert again.prompt_tokens == 771 and again.prompt_tokens_details.cached_tokens == 770  # through the clip, as there


def test_the_same_audio_gives_the_same_logits_and_another_different_ones(c):
    a, same, other = completion(c, wav(440)), completion(c, wav(440)), completion(c, wav(880))
    assert a["tokens_evaluated"] == other["tokens_evaluated"] == 771  # the native prompt is the chat's
    assert a["completion_probabilities"] == same["completion_probabilities"]
    assert a["completion_probabilities"] != other["completion_probabilities"]


def test_an_mp3_is_decoded_like_a_wav(c):
    r = chat(c, audio(MP3.read_bytes(), "mp3"))
    assert r["usage"]["prompt_tokens"] == 771 and r["choices"][0]["message"]["content"]


def test_a_data_uri_and_a_second_clip(c):
    uri = "data:audio/wav;base64," + base64.b64encode(wav(220, 0.5)).decode()
    r = chat(c, {"type": "input_audio", "input_audio": {"url": uri}}, audio(wav(660, 2.0)))
    assert r["usage"]["prompt_tokens"] == 771 + N_AUDIO


@pytest.mark.parametrize("data, fragment", [
    (b"RIFF\x00\x00\x00\x00WAVEjunk, not a wav", "cannot decode the audio"),
    (b"ID3\x04\x00\x00\x00\x00\x00\x00not an mp3 at all", "cannot decode the audio"),
    (b"hello world, this is text", "cannot decode it as an image or audio"),
])
def test_undecodable_audio_is_a_400_and_the_server_goes_on(c, data, fragment):
    r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": [audio(data)]}], "max_tokens": 1})
    assert_error(r, 400, "invalid_request_error", fragment)
    assert chat(c, audio(wav(440)), max_tokens=1)["choices"]


def test_an_image_on_the_audio_only_model_is_a_400(c):
    r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_uri(1)}}]}], "max_tokens": 1})
    assert_error(r, 400, "invalid_request_error", "this model does not take images")


@pytest.fixture(scope="module")
def image_only(request):
    return serve(request, "gemma3-noaudio", "-m", str(VISION / "tinygemma3-stand-in.f32.gguf"),
                 "--mmproj", str(VISION / "mmproj-tinygemma3-stand-in.f32.gguf"), "-np", "1", "-c", "1024")


def test_audio_on_an_image_only_model_is_a_400(image_only):
    with image_only.client(timeout=60) as c:
        assert c.get("/props").json()["modalities"]["audio"] is False
        r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": [audio(wav(440))]}], "max_tokens": 1})
        assert_error(r, 400, "invalid_request_error", "this model does not take audio input")
        r = c.post("/completion", json={"prompt": {"prompt_string": "<__media__>", "multimodal_data": [
            base64.b64encode(MP3.read_bytes()).decode()]}, "n_predict": 1})
        assert_error(r, 400, "invalid_request_error", "does not take audio")
        r = c.post("/completion", json={"prompt": {"prompt_string": "<__media__>", "multimodal_data": [b64(1)]}, "n_predict": 1})
        assert r.status_code == 200, r.text  # images still are


@pytest.fixture(scope="module")
def audio_embeddings(request):
    return serve(request, "qwen2audio-embd", "-m", str(TEXT), "--mmproj", str(MMPROJ), "--embeddings", "--pooling", "mean",
                 "-np", "2", "-c", "4096", "-b", "1024", "-ub", "1024")


def test_embeddings_of_inputs_with_audio(audio_embeddings):
    """input_audio parts and the native form are the same input; another clip, or none, another vector."""
    clip, other = (base64.b64encode(wav(f)).decode() for f in (440, 880))
    with audio_embeddings.client(timeout=120) as c:
        r = c.post("/v1/embeddings", json={"input": [
            {"content": [{"type": "text", "text": "What is this?"}, {"type": "input_audio", "input_audio": {"data": clip}}]},
            {"prompt_string": "What is this?<__media__>", "multimodal_data": [clip]},
            {"prompt_string": "What is this?<__media__>", "multimodal_data": [other]}, "What is this?"]})
        n_text = len(c.post("/tokenize", json={"content": "What is this?"}).json()["tokens"])
    assert r.status_code == 200, r.text
    parts, same, different, plain = [d["embedding"] for d in r.json()["data"]]
    assert parts == same and parts != different and parts != plain
    assert r.json()["usage"]["prompt_tokens"] == 4 * n_text + 3 * N_AUDIO  # the clips' tokens counted
