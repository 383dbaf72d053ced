"""Embedding and rerank formats: request parsing, rerank prompt layout, response building (no model)."""

from __future__ import annotations

import base64
import struct

import pytest

from llamaserve.engine.types import EMBEDDING, RERANK, Result, Task
from llamaserve.errors import InvalidRequest, NotSupported
from llamaserve.protocol import embeddings as emb

BOS, EOS = 101, 102


def tokenize(text: str, add_special: bool) -> list[int]:
    """A stand-in tokenizer: one token per word (its length + 1000), wrapped in BOS/EOS like BERT."""
    words = [1000 + len(w) for w in text.split()]
    return [BOS, *words, EOS] if add_special else words


def parse(body, openai=True, n_embd=8, normalize=2):
    return emb.parse_embedding_request(body, tokenize, 30000, n_embd, normalize, openai)


@pytest.mark.parametrize("value, expected", [
    ("a bb", [[BOS, 1001, 1002, EOS]]),
    ("", [[BOS, EOS]]),
    ([12, 34, 56], [[12, 34, 56]]),
    ([12, "a bb", 56], [[12, 1001, 1002, 56]]),  # mixed: only a leading string gets special tokens
    (["a", "bb"], [[BOS, 1001, EOS], [BOS, 1002, EOS]]),
    (["a", [12, 34]], [[BOS, 1001, EOS], [12, 34]]),
    ([[12, 34], [12, "a", 34]], [[12, 34], [12, 1001, 34]]),
    ({"prompt_string": "a"}, [[BOS, 1001, EOS]]),
    ({"content": [{"type": "text", "text": "a "}, {"type": "text", "text": "bb"}]}, [[BOS, 1001, 1002, EOS]]),
])
def test_input_forms(value, expected):
    assert parse({"input": value}).inputs == expected


def test_content_is_native_and_input_wins():
    req = parse({"content": "a"})
    assert req.inputs == [[BOS, 1001, EOS]] and req.openai is False
    both = parse({"input": "a", "content": "bb"})
    assert both.inputs == [[BOS, 1001, EOS]] and both.openai is True
    assert parse({"input": None, "content": "bb"}).inputs == [[BOS, 1002, EOS]]  # null counts as absent


@pytest.mark.parametrize("body, fragment", [
    ({}, '"input" or "content"'),
    ({"input": []}, "must not be empty"),
    ({"input": [[]]}, "cannot be empty"),
    ({"input": 5}, "must be a string"),
    ({"input": {"content": "text"}}, "must be an array"),
    ({"input": {"content": [{"type": "unknown"}]}}, "content"),
    ({"input": [1, 99999]}, "invalid token id 99999"),
    ({"input": [1, -1]}, "invalid token id -1"),
    ({"input": "a", "encoding_format": "int8"}, "float or base64"),
    ({"input": "a", "dimensions": 4}, "8 dimensions"),
    ({"input": "a", "dimensions": "8"}, "positive integer"),
    ({"input": "a", "embd_normalize": "2"}, "embd_normalize"),
    ({"input": "a", "embd_normalize": -2}, "embd_normalize"),
    ([1, 2], "JSON object"),
])
def test_invalid_requests(body, fragment):
    with pytest.raises(InvalidRequest) as exc:
        parse(body)
    assert fragment in exc.value.message


def test_multimodal_input_is_not_supported():
    with pytest.raises(NotSupported):
        parse({"input": {"content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}})


def test_options():
    req = parse({"input": "a", "encoding_format": "base64", "dimensions": 8, "embd_normalize": 1, "model": "m"})
    assert (req.use_base64, req.normalize, req.model) == (True, 1, "m")
    assert parse({"input": "a"}, normalize=-1).normalize == -1  # the server's --embd-normalize
    # base64 applies to the OpenAI format only
    assert parse({"content": "a", "encoding_format": "base64"}).use_base64 is False
    tasks = emb.build_embedding_tasks(parse({"input": ["a", "bb"], "embd_normalize": 0}))
    assert [(t.kind, t.index, t.embd_normalize) for t in tasks] == [(EMBEDDING, 0, 0), (EMBEDDING, 1, 0)]


def _results(vectors, n_prompt=3):
    out = []
    for i, v in enumerate(vectors):
        out.append(Result(Task([1] * n_prompt, kind=EMBEDDING, index=i), done=True, n_prompt=n_prompt, embedding=v))
    return list(reversed(out))  # any order in, index order out


def test_native_response():
    body = emb.native_embedding_response(_results([[[0.5, 1.0]], [[1.0, 0.0], [0.0, 1.0]]]))
    assert body == [{"index": 0, "embedding": [[0.5, 1.0]]}, {"index": 1, "embedding": [[1.0, 0.0], [0.0, 1.0]]}]


def test_openai_response_float_and_base64():
    results = _results([[[0.5, -1.25]], [[3.0, 0.0]]])
    req = parse({"input": ["a", "b"]})
    body = emb.openai_embedding_response(results, req, "alias")
    assert list(body) == ["model", "object", "usage", "data"]
    assert body["model"] == "alias" and body["object"] == "list"
    assert body["usage"] == {"prompt_tokens": 6, "total_tokens": 6}
    assert body["data"] == [{"embedding": [0.5, -1.25], "index": 0, "object": "embedding"},
                            {"embedding": [3.0, 0.0], "index": 1, "object": "embedding"}]
    req64 = parse({"input": ["a", "b"], "encoding_format": "base64", "model": "text-embedding-3-small"})
    body64 = emb.openai_embedding_response(results, req64, "alias")
    assert body64["model"] == "text-embedding-3-small"
    first = body64["data"][0]
    assert first["encoding_format"] == "base64"
    assert struct.unpack("<2f", base64.b64decode(first["embedding"])) == (0.5, -1.25)


# --- rerank ---

VOCAB = emb.RerankVocab(bos=BOS, eos=EOS, sep=EOS, add_bos=True, add_eos=True, add_sep=False)


def tokenize_text(text: str, add_special: bool, parse_special: bool) -> list[int]:
    assert not add_special
    if parse_special:
        return [7 if w == "<s>" else 1000 + len(w) for w in text.split()]
    return [1000 + len(w) for w in text.split()]


def test_rerank_prompt_layout():
    # no template: [BOS] query [EOS] [SEP if add_sep] document [EOS], the BERT cross-encoder layout
    assert emb.rerank_prompt("a bb", "ccc", tokenize_text, VOCAB) == [BOS, 1001, 1002, EOS, 1003, EOS]
    with_sep = emb.RerankVocab(bos=1, eos=2, sep=3, add_bos=False, add_eos=True, add_sep=True)
    assert emb.rerank_prompt("a", "bb", tokenize_text, with_sep) == [1001, 2, 3, 1002, 2]
    no_eos = emb.RerankVocab(bos=1, eos=-1, sep=3, add_bos=True, add_eos=True, add_sep=False)
    assert emb.rerank_prompt("a", "bb", tokenize_text, no_eos) == [1, 1001, 3, 1002, 3]  # SEP stands in for EOS
    # a GGUF rerank template: placeholders filled, special tokens parsed
    templated = emb.RerankVocab(bos=1, eos=2, sep=3, add_bos=True, add_eos=True, add_sep=False,
                                template="<s> q: {query} d: {document}")
    assert emb.rerank_prompt("a", "bb", tokenize_text, templated) == [7, 1002, 1001, 1002, 1002]


@pytest.mark.parametrize("body, fragment", [
    ({"documents": ["a"]}, '"query" must be provided'),
    ({"query": 5, "documents": ["a"]}, '"query" must be a string'),
    ({"query": "q", "documents": []}, "non-empty string array"),
    ({"query": "q", "documents": None}, "non-empty string array"),
    ({"query": "q", "documents": 123}, "non-empty string array"),
    ({"query": "q", "documents": [1, 2, 3]}, "non-empty string array"),
    ({"query": "q"}, "non-empty string array"),
    ({"query": "q", "documents": ["a"], "top_n": -1}, "top_n"),
    ({"query": "q", "documents": ["a"], "top_n": "2"}, "top_n"),
    ({"query": "q", "documents": ["a"], "return_documents": "yes"}, "return_documents"),
])
def test_invalid_rerank_requests(body, fragment):
    with pytest.raises(InvalidRequest) as exc:
        emb.parse_rerank_request(body)
    assert fragment in exc.value.message


def _scored(scores, n_prompt=5):
    return [Result(Task([1] * n_prompt, kind=RERANK, index=i), done=True, n_prompt=n_prompt, score=s) for i, s in enumerate(scores)]


def test_rerank_response_sorted_and_cut():
    req = emb.parse_rerank_request({"query": "q", "documents": ["d0", "d1", "d2", "d3"], "top_n": 2, "model": "m"})
    body = emb.rerank_response(_scored([0.1, 0.9, -3.0, 0.5]), req, "alias")
    assert body["model"] == "m" and body["object"] == "list"
    assert body["usage"] == {"prompt_tokens": 20, "total_tokens": 20}  # every document counts
    assert body["results"] == [{"index": 1, "relevance_score": 0.9}, {"index": 3, "relevance_score": 0.5}]
    full = emb.rerank_response(_scored([0.1, 0.9, -3.0, 0.5]), emb.parse_rerank_request(
        {"query": "q", "documents": ["d0", "d1", "d2", "d3"], "top_n": 99, "return_documents": True}), "alias")
    assert [r["index"] for r in full["results"]] == [1, 3, 0, 2]
    assert full["results"][0]["document"] == {"text": "d1"}
    assert full["model"] == "alias"


def test_rerank_tei_format():
    req = emb.parse_rerank_request({"query": "q", "texts": ["d0", "d1"], "return_text": True})
    assert req.tei
    body = emb.rerank_response(_scored([0.1, 0.2]), req, "alias")
    assert body == [{"index": 1, "score": 0.2, "text": "d1"}, {"index": 0, "score": 0.1, "text": "d0"}]


def test_rerank_tasks():
    req = emb.parse_rerank_request({"query": "a", "documents": ["bb", "ccc"]})
    tasks = emb.build_rerank_tasks(req, tokenize_text, VOCAB)
    assert [(t.kind, t.index, t.prompt) for t in tasks] == [
        (RERANK, 0, [BOS, 1001, EOS, 1002, EOS]), (RERANK, 1, [BOS, 1001, EOS, 1003, EOS])]
