"""/embedding, /embeddings and /v1/embeddings through HTTP with the real MiniLM model, compared with
PyTorch reference vectors; the OpenAI SDK as client; pooling "none"; generation refused in embedding mode."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import subprocess
import sys

import httpx
import numpy as np
import pytest
from openai import OpenAI

from tests.conftest import reference_numbers, serve, shared_model
from tests.helpers import assert_error, cosine


@pytest.fixture(scope="module")
def reference():
    return reference_numbers("embedding")


@pytest.fixture(scope="module")
def embed_server(request):
    # 3 slots with mean pooling: libllama would abort on n_ubatch 512; the server must pick a valid size
    return serve(request, "embed", "-m", shared_model("all-MiniLM-L6-v2.f16.gguf"),
                 "--embedding", "-np", "3", "-a", "minilm")


@pytest.fixture(scope="module")
def ec(embed_server):
    with embed_server.client() as c:
        yield c


def test_openai_sdk_float_and_base64(embed_server, reference):
    client = OpenAI(base_url=embed_server.url + "/v1", api_key="unused")
    floats = client.embeddings.create(model="text-embedding-3-small", input=reference["sentences"], encoding_format="float")
    assert floats.model == "text-embedding-3-small" and floats.object == "list"
    assert [d.index for d in floats.data] == [0, 1, 2]
    for d, ref in zip(floats.data, reference["vectors"]):
        assert len(d.embedding) == 384 and cosine(d.embedding, ref) > 0.999
    n_tokens = sum(len(t) for t in reference["token_ids"])
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == n_tokens
    # the SDK asks for base64 by default and decodes it itself
    b64 = client.embeddings.create(model="minilm", input=reference["sentences"][0])
    assert np.allclose(b64.data[0].embedding, floats.data[0].embedding, atol=1e-7)
    single = client.embeddings.create(model="minilm", input=reference["token_ids"][2], encoding_format="float")
    assert cosine(single.data[0].embedding, reference["vectors"][2]) > 0.999


def test_base64_is_float32(ec, reference):
    d = ec.post("/v1/embeddings", json={"input": reference["sentences"][1], "encoding_format": "base64"}).json()
    item = d["data"][0]
    assert item["encoding_format"] == "base64" and d["model"] == "minilm"
    vec = np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")
    assert vec.shape == (384,) and cosine(vec, reference["vectors"][1]) > 0.999


def test_native_forms(ec, reference):
    text = ec.post("/embedding", json={"content": reference["sentences"][0]}).json()
    assert len(text) == 1 and text[0]["index"] == 0 and len(text[0]["embedding"]) == 1
    vec = text[0]["embedding"][0]
    assert cosine(vec, reference["vectors"][0]) > 0.999
    tokens = ec.post("/embeddings", json={"input": reference["token_ids"][0]}).json()
    assert np.allclose(tokens[0]["embedding"][0], vec, atol=1e-6)  # token ids give the same vector
    many = ec.post("/embeddings", json={"input": reference["sentences"]}).json()
    assert [m["index"] for m in many] == [0, 1, 2]
    # "content" on the OpenAI route is answered natively, as llama-server does
    assert isinstance(ec.post("/v1/embeddings", json={"content": "a cat"}).json(), list)


@pytest.mark.parametrize("mode", [-1, 0, 1, 2, 3])
def test_normalisation(ec, reference, mode):
    vec = np.asarray(ec.post("/embedding", json={"content": reference["sentences"][0], "embd_normalize": mode}).json()[0]["embedding"][0])
    assert cosine(vec, reference["vectors"][0]) > 0.999  # every mode only scales
    if mode == -1:
        assert np.linalg.norm(vec) == pytest.approx(reference["unnormalized_l2_norm"][0], rel=1e-3)
    elif mode == 0:
        assert np.abs(vec).max() == pytest.approx(32760.0, rel=1e-5)
    else:
        assert (np.abs(vec) ** mode).sum() ** (1 / mode) == pytest.approx(1.0, abs=1e-4)


def test_32_concurrent_requests(embed_server, reference):
    def one(i):
        with httpx.Client(base_url=embed_server.url, timeout=120) as c:
            r = c.post("/v1/embeddings", json={"input": reference["sentences"][i % 3]})
            assert r.status_code == 200, r.text
            return r.json()["data"][0]["embedding"]

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        vectors = list(pool.map(one, range(32)))
    for i, vec in enumerate(vectors):
        assert cosine(vec, reference["vectors"][i % 3]) > 0.999


@pytest.mark.parametrize("body, fragment", [
    ({"input": "word " * 600}, "too large"),
    ({"input": "a cat", "dimensions": 128}, "dimensions"),
    ({"input": "a cat", "encoding_format": "int8"}, "float or base64"),
    ({"input": []}, "must not be empty"),
    ({"input": [101, 999999, 102]}, "invalid token id"),
    ({"model": "m"}, '"input" or "content"'),
    ({"input": "a cat", "embd_normalize": "2"}, "embd_normalize"),
])
def test_bad_requests(ec, body, fragment):
    assert_error(ec.post("/v1/embeddings", json=body), 400, "invalid_request_error", fragment)


def test_dimensions_equal_to_the_model_size_is_accepted(ec):
    assert len(ec.post("/v1/embeddings", json={"input": "a cat", "dimensions": 384}).json()["data"][0]["embedding"]) == 384


@pytest.mark.parametrize("path, body", [
    ("/completion", {"prompt": "hi", "n_predict": 2}),
    ("/completion", {"prompt": "hi", "n_predict": 2, "stream": True}),
    ("/v1/completions", {"prompt": "hi", "max_tokens": 2}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "stream": True}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}),
])
def test_generation_is_not_supported_in_embedding_mode(ec, path, body):
    assert_error(ec.post(path, json=body), 501, "not_supported_error", "embedding mode")


@pytest.mark.parametrize("path, body", [
    ("/v1/messages", {"model": "m", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}], "stream": True}),
    ("/v1/responses", {"input": "hi", "stream": True}),
    ("/api/chat", {"model": "m", "messages": [{"role": "user", "content": "hi"}]}),  # Ollama streams by default
    ("/api/generate", {"model": "m", "prompt": "hi", "raw": True}),
])
def test_other_generation_families_are_refused_before_streaming(ec, path, body):
    r = ec.post(path, json=body)  # each family keeps its own error envelope
    assert r.status_code == 501 and "embedding mode" in r.text, r.text


def test_other_modes_are_not_supported(ec):
    assert_error(ec.post("/rerank", json={"query": "q", "documents": ["d"]}), 501, "not_supported_error", "--reranking")
    assert_error(ec.post("/infill", json={"input_prefix": "a", "input_suffix": "b"}), 501, "not_supported_error", "infill")
    assert ec.post("/embedding", json={"content": "still serving"}).status_code == 200


@pytest.fixture(scope="module")
def tokens_server(request):
    return serve(request, "embed-none", "-m", shared_model("all-MiniLM-L6-v2.f16.gguf"),
                 "--embedding", "--pooling", "none", "-np", "2")


def test_pooling_none_gives_one_unnormalised_vector_per_token(tokens_server, reference):
    with tokens_server.client() as c:
        d = c.post("/embeddings", json={"input": "hello hello hello", "embd_normalize": 2}).json()
        rows = d[0]["embedding"]
        assert len(rows) == 5 and all(len(r) == 384 for r in rows)  # [CLS] 3 words [SEP]
        assert all(abs(np.linalg.norm(r) - 1) > 1e-3 for r in rows)  # never normalised
        # per-token vectors averaged give the model's mean pooling
        ids = reference["token_ids"][0]
        mean = np.mean(c.post("/embeddings", json={"input": ids}).json()[0]["embedding"], axis=0)
        assert cosine(mean, reference["vectors"][0]) > 0.999
        assert_error(c.post("/v1/embeddings", json={"input": "hello"}), 400, "invalid_request_error", "not OAI compatible")


def test_too_many_slots_for_mean_pooling_is_refused_at_start(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "llamaserve", "-m", shared_model("all-MiniLM-L6-v2.f16.gguf"), "--embedding",
         "-np", "8", "-ub", "4", "--port", "0", "-t", "1"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "mean pooling" in proc.stderr and "-np" in proc.stderr


def test_ollama_embed(embed_server, reference):
    import ollama

    r = ollama.Client(host=embed_server.url).embed(model="minilm", input=reference["sentences"])
    assert len(r.embeddings) == 3 and r.prompt_eval_count == sum(len(t) for t in reference["token_ids"])
    for vec, ref in zip(r.embeddings, reference["vectors"]):
        assert cosine(vec, ref) > 0.999 and abs(np.linalg.norm(vec) - 1.0) < 1e-3  # L2-normalised, as Ollama's
