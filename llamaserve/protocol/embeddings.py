"""Embedding and rerank formats: llama.cpp's native /embedding(s), OpenAI's /v1/embeddings and the
Jina/TEI-style /rerank. Request JSON → token inputs and Tasks, Results → response JSON.

Pure translation: tokenization is passed in as a function, nothing here does I/O.
"""

from __future__ import annotations

import array
import base64
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, WithJsonSchema

from llamaserve.engine.types import EMBEDDING, RERANK, Result, Task
from llamaserve.errors import InvalidRequest, NotSupported
from llamaserve.protocol import media as media_input
from llamaserve.protocol.native import PROMPT_SCHEMA, tokenize_mixed, tokenize_one
from llamaserve.protocol.tokenizer import Tokenize

# (text, add_special, parse_special) -> tokens
TokenizeText = Callable[[str, bool, bool], list[int]]

ENCODING_FORMATS = ("float", "base64")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _given(body: dict[str, Any], key: str) -> bool:
    # a JSON null counts as absent, as in llama-server
    return body.get(key) is not None


# --- embeddings ---

class EmbeddingBody(BaseModel):
    """An embeddings request: "input" (or native "content"), a string, token ids, a mix, or an array of those.

    The body's schema, for the API description; parse_embedding_request does the checking."""

    model_config = ConfigDict(extra="allow")

    input: Annotated[Any, WithJsonSchema(PROMPT_SCHEMA)] = None
    content: Annotated[Any, WithJsonSchema(PROMPT_SCHEMA)] = None
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[StrictInt, Field(ge=1)] | None = None
    embd_normalize: Annotated[StrictInt, Field(ge=-1)] | None = None
    model: StrictStr | None = None


@dataclass
class EmbeddingRequest:
    inputs: list  # token ids of each input, in order (an input with media: the model's MediaPrompt)
    openai: bool  # answer in OpenAI's format (else llama.cpp's native list)
    use_base64: bool  # OpenAI format: vectors as base64 of little-endian float32
    normalize: int  # embd_normalize
    model: str | None  # the request's "model", echoed in the OpenAI response


def parse_embedding_request(
    body: Any, tokenize: Tokenize, n_vocab: int, n_embd: int, default_normalize: int, openai: bool,
    tokenize_media=None,
) -> EmbeddingRequest:
    """Both families' bodies: "input" (or native "content": a body with it is answered natively,
    as llama-server does), a string, token ids, a mix, or an array of those; plus
    "encoding_format", "dimensions" and "embd_normalize". With `tokenize_media` (a projector is
    loaded) an input may hold images or audio: {"prompt_string", "multimodal_data"} or content parts."""
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    if _given(body, "input"):
        prompt = body["input"]
    elif _given(body, "content"):
        prompt = body["content"]
        openai = False
    else:
        raise InvalidRequest('"input" or "content" must be provided')

    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ENCODING_FORMATS:
        raise InvalidRequest("The format to return the embeddings in. Can be either float or base64")

    dims = body.get("dimensions")
    if dims is not None:
        if not _is_int(dims) or dims <= 0:
            raise InvalidRequest('"dimensions" must be a positive integer')
        if dims != n_embd:
            raise InvalidRequest(
                f'"dimensions" = {dims} is not supported: this model\'s embeddings have {n_embd} dimensions '
                "and cannot be shortened (leave \"dimensions\" out, or set it to the model's size)"
            )

    normalize = body.get("embd_normalize", default_normalize)
    if normalize is None:
        normalize = default_normalize
    if not _is_int(normalize) or normalize < -1:
        raise InvalidRequest('"embd_normalize" must be an integer >= -1 '
                             "(-1 none, 0 max-abs int16, 1 taxicab, 2 euclidean, >2 p-norm)")

    if isinstance(prompt, list) and not any(_is_int(x) for x in prompt):
        if not prompt:
            raise InvalidRequest('"input" must not be empty')
        inputs = [_tokenize_input(p, tokenize, tokenize_media) for p in prompt]
    else:
        inputs = [_tokenize_input(prompt, tokenize, tokenize_media)]
    for tokens in inputs:
        if not isinstance(tokens, list):
            continue  # an input with media, made by the model's own tokenizer
        if not tokens:
            raise InvalidRequest("Input content cannot be empty")
        bad = [t for t in tokens if not 0 <= t < n_vocab]
        if bad:
            raise InvalidRequest(f"invalid token id {bad[0]} in input (vocabulary has {n_vocab} tokens)")
    model = body.get("model") if isinstance(body.get("model"), str) else None
    return EmbeddingRequest(inputs, openai, openai and fmt == "base64", normalize, model)


def _tokenize_input(p: Any, tokenize: Tokenize, tokenize_media=None) -> list[int]:
    if isinstance(p, str):
        return tokenize(p, True)
    if isinstance(p, list):
        return tokenize_mixed(p, tokenize)
    if isinstance(p, dict):
        if "prompt_string" in p:
            if "multimodal_data" in p:
                if tokenize_media is None:
                    raise NotSupported("Multimodal data provided, but model does not support multimodal requests.")
                return tokenize_one(p, tokenize, tokenize_media)
            inner = p["prompt_string"]
            if isinstance(inner, (str, list)):
                return _tokenize_input(inner, tokenize)
        elif "content" in p:
            media: list[bytes] = []
            text = _content_text(p["content"], media if tokenize_media is not None else None)
            return tokenize_media(text, media) if media else tokenize(text, True)
    raise InvalidRequest('"input" elements must be a string, a list of tokens, a JSON object containing a prompt string, '
                         "or a list of mixed strings & tokens.")


def _content_text(content: Any, media: list[bytes] | None = None) -> str:
    """OpenAI-style content parts of one input: their texts, concatenated, each image or audio part
    the media marker where it sits and its bytes appended to `media` (None: media is refused)."""
    if not isinstance(content, list):
        raise InvalidRequest('"content" must be an array')
    texts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif media is not None and kind in ("image_url", "input_audio"):
            media.append(media_input.openai_part(part, '"content"'))
            texts.append(media_input.MARKER)
        elif kind in ("image_url", "input_audio", "input_video"):
            raise NotSupported(f'"{kind}" content needs a multimodal model; this model reads text only')
        else:
            raise InvalidRequest('each "content" part must be {"type": "text", "text": string}')
    return "".join(texts)


def build_embedding_tasks(req: EmbeddingRequest) -> list[Task]:
    # an input with media (the engine's MediaPrompt) carries where its chunks sit
    return [Task(prompt=getattr(tokens, "tokens", tokens), media=getattr(tokens, "spans", ()),
                 media_owner=getattr(tokens, "owner", None), kind=EMBEDDING, embd_normalize=req.normalize, index=i)
            for i, tokens in enumerate(req.inputs)]


def native_embedding_response(results: list[Result]) -> list[dict[str, Any]]:
    """llama.cpp's format: per input its index and a list of vectors (one pooled, or one per token)."""
    return [{"index": r.task.index, "embedding": r.embedding} for r in sorted(results, key=lambda r: r.task.index)]


def float32_base64(vec: list[float]) -> str:
    # float32 in the machine's byte order (little-endian wherever libllama runs), as llama-server sends it
    return base64.b64encode(array.array("f", vec).tobytes()).decode("ascii")


def openai_embedding_response(results: list[Result], req: EmbeddingRequest, model_alias: str) -> dict[str, Any]:
    data = []
    n_tokens = 0
    for i, r in enumerate(sorted(results, key=lambda r: r.task.index)):
        vec = r.embedding[0]
        if req.use_base64:
            data.append({"embedding": float32_base64(vec), "index": i, "object": "embedding", "encoding_format": "base64"})
        else:
            data.append({"embedding": vec, "index": i, "object": "embedding"})
        n_tokens += r.n_prompt
    return {
        "model": req.model or model_alias,
        "object": "list",
        "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
        "data": data,
    }


# --- reranking ---

@dataclass
class RerankVocab:
    """What building a reranker's input needs to know about its vocabulary."""

    bos: int
    eos: int
    sep: int
    add_bos: bool
    add_eos: bool
    add_sep: bool
    template: str = ""  # the GGUF's rerank template with {query} and {document}; "" = none


class RerankBody(BaseModel):
    """A rerank request: a query and the documents to score (Jina's "documents" or TEI's "texts").

    The body's schema, for the API description; parse_rerank_request does the checking."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"required": ["query"]})

    query: StrictStr = ""
    documents: Annotated[list[StrictStr], Field(min_length=1)] | None = None
    texts: Annotated[list[StrictStr], Field(min_length=1)] | None = None
    top_n: Annotated[StrictInt, Field(ge=0)] | None = None
    return_text: StrictBool | None = None
    return_documents: StrictBool | None = None
    model: StrictStr | None = None


@dataclass
class RerankRequest:
    query: str
    documents: list[str]
    top_n: int
    tei: bool  # Hugging Face TEI format ("texts" in, a bare list out) instead of Jina's
    return_text: bool  # TEI: each result carries "text"
    return_documents: bool  # Jina: each result carries "document": {"text"}
    model: str | None


def parse_rerank_request(body: Any) -> RerankRequest:
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    tei = "texts" in body
    if "query" not in body:
        raise InvalidRequest('"query" must be provided')
    query = body["query"]
    if not isinstance(query, str):
        raise InvalidRequest('"query" must be a string')
    docs = body["documents"] if _given(body, "documents") else body.get("texts")
    if not isinstance(docs, list) or not docs or not all(isinstance(d, str) for d in docs):
        raise InvalidRequest('"documents" must be a non-empty string array')
    top_n = body.get("top_n")
    if top_n is None:
        top_n = len(docs)
    elif not _is_int(top_n) or top_n < 0:
        raise InvalidRequest('"top_n" must be a non-negative integer')
    flags = {}
    for name in ("return_text", "return_documents"):
        value = body.get(name, False)
        if value is None:
            value = False
        if not isinstance(value, bool):
            raise InvalidRequest(f'"{name}" must be a boolean')
        flags[name] = value
    model = body.get("model") if isinstance(body.get("model"), str) else None
    return RerankRequest(query, docs, top_n, tei, flags["return_text"], flags["return_documents"], model)


def rerank_prompt(query: str, document: str, tokenize: TokenizeText, vocab: RerankVocab) -> list[int]:
    """The reranker's input, as llama-server builds it: the model's rerank template with its
    placeholders filled in (special tokens parsed), else [BOS] query [EOS] [SEP] document [EOS],
    each bracketed token present when the vocabulary asks to add it."""
    if vocab.template:
        text = vocab.template.replace("{query}", query).replace("{document}", document)
        return tokenize(text, False, True)
    eos = vocab.eos if vocab.eos >= 0 else vocab.sep
    out: list[int] = []
    if vocab.add_bos:
        out.append(vocab.bos)
    out += tokenize(query, False, False)
    if vocab.add_eos:
        out.append(eos)
    if vocab.add_sep:
        out.append(vocab.sep)
    out += tokenize(document, False, False)
    if vocab.add_eos:
        out.append(eos)
    return out


def build_rerank_tasks(req: RerankRequest, tokenize: TokenizeText, vocab: RerankVocab) -> list[Task]:
    return [Task(prompt=rerank_prompt(req.query, doc, tokenize, vocab), kind=RERANK, index=i) for i, doc in enumerate(req.documents)]


def rerank_response(results: list[Result], req: RerankRequest, model_alias: str) -> dict[str, Any] | list[dict[str, Any]]:
    """Results sorted by score (highest first), cut to top_n; usage counts every document."""
    label = "score" if req.tei else "relevance_score"
    ranked = sorted(results, key=lambda r: (-r.score, r.task.index))[: req.top_n]
    items = []
    for r in ranked:
        item: dict[str, Any] = {"index": r.task.index, label: r.score}
        doc = req.documents[r.task.index]
        if req.tei and req.return_text:
            item["text"] = doc
        elif not req.tei and req.return_documents:
            item["document"] = {"text": doc}
        items.append(item)
    if req.tei:
        return items
    n_tokens = sum(r.n_prompt for r in results)
    return {
        "model": req.model or model_alias,
        "object": "list",
        "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
        "results": items,
    }
