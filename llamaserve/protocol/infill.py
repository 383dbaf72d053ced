"""/infill (fill-in-the-middle): request fields → the FIM prompt, built from the vocabulary's FIM tokens
as llama-server builds it. The rest of the request is a native /completion request.

Pure: tokenization is passed in as a function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Callable

from pydantic import BaseModel, ConfigDict, StrictStr, WithJsonSchema

from llamaserve.errors import InvalidRequest
from llamaserve.protocol.native import CompletionRequest

# (text, add_special, parse_special) -> tokens
TokenizeText = Callable[[str, bool, bool], list[int]]

# Separates extra-context chunks when the vocabulary has no FIM file separator.
CHUNK_SEPARATOR = "\n\n--- snippet ---\n\n"
# llama-server names the project and the current file with fixed placeholders.
REPO_NAME = "myproject\n"
CURRENT_FILE = "filename\n"


@dataclass
class FimTokens:
    pre: int
    suf: int
    mid: int
    rep: int = -1  # repository name marker (repo-level format)
    sep: int = -1  # file separator (repo-level format)

    @classmethod
    def from_ids(cls, ids: dict[str, int]) -> "FimTokens":
        return cls(ids.get("pre", -1), ids.get("suf", -1), ids.get("mid", -1), ids.get("rep", -1), ids.get("sep", -1))

    def missing(self) -> str:
        """llama-server's wording for each FIM token the vocabulary lacks; "" when infill works."""
        parts = []
        for token, name in ((self.pre, "prefix"), (self.suf, "suffix"), (self.mid, "middle")):
            if token < 0:
                parts.append(f"{name} token is missing. ")
        return "".join(parts)


_TEXT_OR_TOKENS = {
    "anyOf": [
        {"type": "string"},
        {"type": "array", "items": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]}},
    ],
    "description": "a string, or an array of token ids and strings",
}


class ExtraChunk(BaseModel):
    model_config = ConfigDict(extra="allow")

    filename: StrictStr = "tmp"
    text: StrictStr


class InfillBody(CompletionRequest):
    """The /infill body: the code before and after the gap, optional extra context; every /completion field.

    The body's schema, for the API description; parse_infill does the checking."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"required": ["input_prefix", "input_suffix"]})

    prompt: StrictStr = ""  # type: ignore[assignment]  # text that continues the prefix
    input_prefix: Annotated[Any, WithJsonSchema(_TEXT_OR_TOKENS)] = None
    input_suffix: Annotated[Any, WithJsonSchema(_TEXT_OR_TOKENS)] = None
    input_extra: list[ExtraChunk] | None = None


@dataclass
class InfillRequest:
    input_prefix: Any  # a string, or an array of token ids and strings
    input_suffix: Any
    input_extra: list[tuple[str, str]]  # (filename, text) chunks of extra context
    prompt: str  # text that continues the prefix (llama-server appends it to the prefix)


def parse_infill(body: Any) -> InfillRequest:
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    prompt = body.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise InvalidRequest('"prompt" must be a string')
    for name in ("input_prefix", "input_suffix"):
        if name not in body:
            raise InvalidRequest(f'"{name}" is required')
        if not _text_or_tokens(body[name]):
            raise InvalidRequest(f'"{name}" must be a string or an array of token ids and strings')
    extra = body.get("input_extra")
    if extra is None:
        extra = []
    if not isinstance(extra, list):
        raise InvalidRequest('"input_extra" must be an array of {"filename": string, "text": string}')
    chunks = []
    for chunk in extra:
        if not isinstance(chunk, dict) or not isinstance(chunk.get("text"), str):
            raise InvalidRequest('extra_context chunk must contain a "text" field with a string value')
        filename = chunk.get("filename", "tmp")
        if not isinstance(filename, str):
            raise InvalidRequest('extra_context chunk\'s "filename" field must be a string')
        chunks.append((filename, chunk["text"]))
    return InfillRequest(body["input_prefix"], body["input_suffix"], chunks, prompt or "")


def _text_or_tokens(value: Any) -> bool:
    if isinstance(value, str):
        return True
    return isinstance(value, list) and all(isinstance(x, str) or (isinstance(x, int) and not isinstance(x, bool)) for x in value)


def _tokens(value: Any, tokenize: TokenizeText) -> list[int]:
    # plain text: no special tokens added or parsed, so user code cannot smuggle FIM markers in
    if isinstance(value, str):
        return tokenize(value, False, False)
    out: list[int] = []
    for x in value:
        out.extend(tokenize(x, False, False) if isinstance(x, str) else [x])
    return out


def build_infill_prompt(
    req: InfillRequest,
    tokenize: TokenizeText,
    fim: FimTokens,
    *,
    bos: int,
    add_bos: bool,
    n_batch: int,
    n_predict: int,
    n_ctx: int,
    spm: bool = False,
) -> list[int]:
    """The FIM prompt, laid out as llama-server lays it out:

        [extra context] [BOS] <PRE> prefix prompt <SUF> suffix <MID>      (spm: ... <SUF> suffix <PRE> prefix prompt <MID>)

    where the extra context, in the repo-level format when the vocabulary has FIM_REP/FIM_SEP, is
        <REP>myproject\\n <SEP>{filename}\\n{text} ... <SEP>filename\\n
    and otherwise the chunks' texts, each after a "--- snippet ---" separator.
    Sizes follow llama-server: the prefix keeps its last 3/4 * n_batch tokens, the suffix its
    first n_batch/4 - 2 - len(prompt), and the extra context the last n_ctx - n_batch - 2 * n_predict
    tokens (n_predict being the server's default).
    """
    prefix = _tokens(req.input_prefix, tokenize)
    suffix = _tokens(req.input_suffix, tokenize)
    prompt = tokenize(req.prompt, False, True) if req.prompt else []

    extra: list[int] = []
    if fim.rep >= 0:
        extra += [fim.rep] + tokenize(REPO_NAME, False, False)
    for filename, text in req.input_extra:
        if fim.sep >= 0:
            extra += [fim.sep] + tokenize(filename + "\n", False, False)
        else:
            extra += tokenize(CHUNK_SEPARATOR, False, False)
        extra += tokenize(text, False, False)
    if fim.sep >= 0:
        extra += [fim.sep] + tokenize(CURRENT_FILE, False, False)

    n_prefix = min(len(prefix), 3 * (n_batch // 4))
    n_suffix = min(len(suffix), max(0, n_batch // 4 - (2 + len(prompt))))
    n_extra = min(max(0, n_ctx - n_batch - 2 * n_predict), len(extra))

    head = [fim.pre] + prefix[len(prefix) - n_prefix:] + prompt
    tail = [fim.suf] + suffix[:n_suffix]
    first, second = (tail, head) if spm else (head, tail)
    if add_bos:
        first = [bos] + first
    return (extra[len(extra) - n_extra:] if n_extra else []) + first + second + [fim.mid]
