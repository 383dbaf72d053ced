"""/rerank and its aliases through HTTP with the synthetic MiniLM reranker.

Its classifier head is untrained: scores are deterministic but mean nothing, so the tests check them
against the PyTorch reference numbers and check ordering against the model's own scores, never relevance."""

from __future__ import annotations

import json

import pytest

from tests.conftest import reference_numbers, serve, shared_model
from tests.helpers import assert_error

ALIASES = ("/rerank", "/reranking", "/v1/rerank", "/v1/reranking")


@pytest.fixture(scope="module")
def reference():
    return reference_numbers("rerank")


@pytest.fixture(scope="module")
def rc(request):
    with serve(request, "rerank", "-m", shared_model("synthetic-reranker-MiniLM-L6.q8_0.gguf"),
               "--reranking", "-np", "2").client() as c:
        yield c


def ask(rc, reference, path="/rerank", **extra):
    r = rc.post(path, json={"query": reference["query"], "documents": reference["documents"], **extra})
    assert r.status_code == 200, r.text
    return r.json()


def test_scores_follow_the_reference_and_are_sorted(rc, reference):
    d = ask(rc, reference, model="my-reranker")
    assert d["model"] == "my-reranker" and d["object"] == "list"
    results = d["results"]
    assert sorted(r["index"] for r in results) == [0, 1, 2]
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    for r in results:
        assert r["relevance_score"] == pytest.approx(reference["scores"][r["index"]], abs=0.06)  # q8_0 vs PyTorch
    # usage counts every document's input: [CLS] query [SEP] document [SEP], as in the reference
    n_tokens = sum(len(t) for t in reference["token_ids"])
    assert d["usage"] == {"prompt_tokens": n_tokens, "total_tokens": n_tokens}
    assert ask(rc, reference) ["results"] == results  # deterministic


@pytest.mark.parametrize("top_n, expected", [(None, 3), (2, 2), (3, 3), (99, 3), (0, 0)])
def test_top_n(rc, reference, top_n, expected):
    full = ask(rc, reference)["results"]
    d = ask(rc, reference, **({} if top_n is None else {"top_n": top_n}))
    assert d["results"] == full[:expected]
    assert d["usage"]["prompt_tokens"] == sum(len(t) for t in reference["token_ids"])


def test_aliases_answer_alike(rc, reference):
    first = ask(rc, reference, ALIASES[0])["results"]
    for path in ALIASES[1:]:
        assert ask(rc, reference, path)["results"] == first


def test_documents_returned_on_request(rc, reference):
    d = ask(rc, reference, top_n=1, return_documents=True)
    best = d["results"][0]
    assert best["document"] == {"text": reference["documents"][best["index"]]}
    assert "document" not in ask(rc, reference, top_n=1)["results"][0]


def test_tei_format(rc, reference):
    r = rc.post("/rerank", json={"query": reference["query"], "texts": reference["documents"], "return_text": True})
    items = r.json()
    assert isinstance(items, list) and len(items) == 3
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
    assert all(i["text"] == reference["documents"][i["index"]] for i in items)


@pytest.mark.parametrize("documents", [[], None, 123, [1, 2, 3]])
def test_invalid_documents(rc, documents):
    assert_error(rc.post("/rerank", json={"query": "q", "documents": documents}), 400, "invalid_request_error", "documents")


def test_invalid_query_and_too_long_input(rc):
    assert_error(rc.post("/rerank", json={"documents": ["d"]}), 400, "invalid_request_error", "query")
    assert_error(rc.post("/rerank", json={"query": "q", "documents": ["word " * 600]}), 400, "invalid_request_error", "too large")


def test_a_reranker_serves_only_reranking(rc):
    assert_error(rc.post("/v1/embeddings", json={"input": "x"}), 501, "not_supported_error", "/rerank")
    assert_error(rc.post("/completion", json={"prompt": "x"}), 501, "not_supported_error", "embedding mode")


def test_generation_server_does_not_rerank_or_embed(client):
    assert_error(client.post("/rerank", json={"query": "q", "documents": ["d"]}), 501, "not_supported_error", "--reranking")
    assert_error(client.post("/v1/embeddings", json={"input": "x"}), 501, "not_supported_error", "--embeddings")
    assert_error(client.post("/embedding", json={"content": "x"}), 501, "not_supported_error", "--embeddings")
