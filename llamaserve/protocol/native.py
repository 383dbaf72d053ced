"""llama.cpp's native completion format: request JSON → Tasks, Results → response JSON.

Pure translation: tokenization is passed in (a Tokenizer, the engine's model in the server), nothing
here does I/O.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Any, TypeVar, Union

from pydantic import (
    BaseModel, ConfigDict, Field, RootModel, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError, WithJsonSchema,
)

from llamaserve.config import SPEC_TYPES, SamplingDefaults
from llamaserve.engine.types import (
    DEFAULT_DRY_BREAKERS, DEFAULT_SAMPLERS, RANDOM_SEED, Result, SamplingParams, SpecParams, Task, TokenProb,
    spec_type_order,
)
from llamaserve.errors import InvalidRequest, MediaUnsupported
from llamaserve.protocol import media as media_input
from llamaserve.protocol.constraints import request_grammar, schema_grammar
from llamaserve.protocol.task_defaults import TaskDefaults
from llamaserve.protocol.tokenizer import Tokenize, Tokenizer

M = TypeVar("M", bound=BaseModel)

SAMPLER_NAMES = {
    "penalties": "penalties", "dry": "dry", "top_n_sigma": "top_n_sigma", "top_k": "top_k",
    "typ_p": "typ_p", "typical_p": "typ_p", "typical": "typ_p", "typ": "typ_p", "top_p": "top_p",
    "nucleus": "top_p", "min_p": "min_p", "xtc": "xtc", "temperature": "temperature", "temp": "temperature",
    "infill": "infill", "adaptive_p": "adaptive_p",
}
# names match case-insensitively, with '-', '_' or nothing between words (top-k, top_k, topk)
_SAMPLER_LOOKUP = {k.replace("_", ""): v for k, v in SAMPLER_NAMES.items()}
# --samplers string form: one letter per sampler
SAMPLER_CHARS = {"e": "penalties", "d": "dry", "s": "top_n_sigma", "k": "top_k", "y": "typ_p", "p": "top_p",
                 "m": "min_p", "x": "xtc", "t": "temperature", "i": "infill", "a": "adaptive_p"}

SAMPLERS_SCHEMA = {
    "anyOf": [
        {"type": "array", "items": {"type": "string", "enum": sorted(SAMPLER_NAMES)}},
        {"type": "string", "pattern": f"^[{''.join(SAMPLER_CHARS)}]*$"},
        {"type": "null"},
    ],
}

INT32_MAX = 2**31 - 1
FLOAT32_MAX = 3.4028234663852886e38


def _int(lo: int, hi: int = INT32_MAX):
    # Integers reach C as int32: bounded here, so none is silently wrapped by ctypes.
    return Annotated[StrictInt, Field(ge=lo, le=hi)]


# JSON numbers (ints too, but not bools). Sampling floats become C floats: anything beyond
# float32 would turn into inf there (and NaN in the softmax), so it is refused here.
Number = Annotated[StrictFloat, Field(ge=-FLOAT32_MAX, le=FLOAT32_MAX)]
Unit = Annotated[StrictFloat, Field(ge=0, le=1)]
Int32 = _int(-INT32_MAX - 1)

# What "prompt" may be, for the OpenAPI schema (the code checks it in tokenize_prompts).
_TOKENS_OR_TEXT = {"type": "array", "minItems": 1, "items": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]}}
PROMPT_SCHEMA = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        _TOKENS_OR_TEXT,
        {"type": "array", "minItems": 1, "items": {"anyOf": [{"type": "string", "minLength": 1}, _TOKENS_OR_TEXT]}},
    ],
    "description": "a string, token ids, a mix of both, or an array of such prompts",
}


class LoraScale(BaseModel):
    """One LoRA adapter's scale: its id (GET /lora-adapters) and the scale (0 = off)."""

    model_config = ConfigDict(extra="allow")

    id: _int(0)
    scale: Number


class LoraScales(RootModel[list[LoraScale]]):
    """The POST /lora-adapters body: adapter scales for later requests; adapters not listed get 0."""


class SpeculativeFields(BaseModel):
    """A request's speculative decoding settings: the `speculative` object, or the same fields flat with
    a "speculative." prefix as llama-server reads them ("speculative.n_max": 8)."""

    model_config = ConfigDict(extra="allow")

    n_max: _int(0) | None = None  # draft model: most tokens drafted at once
    n_min: _int(0) | None = None  # draft model: a shorter draft is not verified
    p_min: Unit | None = None  # draft model: the draft ends at a token it is less sure of
    type: StrictStr | list[StrictStr] | None = None  # the draft types for this request ("none" = no drafting)
    ngram_size_n: _int(1, 1 << 16) | None = None  # ngram-simple: length of the n-gram looked up
    ngram_size_m: _int(1, 1 << 16) | None = None  # ngram-simple: most tokens drafted after it
    ngram_min_hits: _int(0) | None = None  # accepted; ngram-simple reads no hit count (as llama-server's)


class CompletionRequest(BaseModel):
    """The native /completion body. Unknown fields are accepted (as llama-server does)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"required": ["prompt"]})

    prompt: Annotated[Any, WithJsonSchema(PROMPT_SCHEMA)] = None
    n_predict: _int(-1) | None = None
    max_tokens: _int(-1) | None = None
    stream: StrictBool = False
    stop: list[StrictStr] | StrictStr | None = None
    cache_prompt: StrictBool | None = None  # None: the server's (--no-cache-prompt)
    n_cache_reuse: _int(0) | None = None
    id_slot: _int(-1) = -1
    n_keep: _int(-1) | None = None  # None: the server's --keep
    n_discard: _int(0) = 0  # tokens dropped per context shift (0: half of those after n_keep)
    t_max_predict_ms: _int(-1, 2**63 - 1) = -1
    return_tokens: StrictBool = False
    timings_per_token: StrictBool = False
    return_progress: StrictBool = False  # streamed: prompt_progress updates while the prompt is evaluated
    n_probs: _int(0) = 0
    post_sampling_probs: StrictBool = False
    samplers: Annotated[list[StrictStr] | StrictStr | None, WithJsonSchema(SAMPLERS_SCHEMA)] = None
    logit_bias: Any = None
    grammar: StrictStr | None = None  # None or "": the server's --grammar / --json-schema, unless json_schema is given
    json_schema: Any = None
    lora: list[LoraScale] | None = None  # adapters not listed run at 0; absent or [] = the server's scales
    speculative: SpeculativeFields | None = None  # also "speculative.<field>" flat (SpeculativeFields)
    response_fields: list[StrictStr] | None = None

    # Sampling fields left out (or null) take the server's default (SamplingDefaults, from the
    # command line), as llama-server starts each request from its own sampling parameters.
    temperature: Number | None = None
    dynatemp_range: Number | None = None
    dynatemp_exponent: Number | None = None
    top_k: Int32 | None = None
    top_p: Unit | None = None
    min_p: Unit | None = None
    typical_p: Number | None = None
    top_n_sigma: Number | None = None
    repeat_penalty: Number | None = None
    repeat_last_n: _int(-1) | None = None
    presence_penalty: Number | None = None
    frequency_penalty: Number | None = None
    dry_multiplier: Number | None = None
    dry_base: Number | None = None  # < 1: the server's
    dry_allowed_length: _int(0) | None = None
    dry_penalty_last_n: _int(-1) | None = None
    dry_sequence_breakers: list[StrictStr] | None = None
    xtc_probability: Unit | None = None
    xtc_threshold: Unit | None = None
    mirostat: _int(0, 2) | None = None
    mirostat_tau: Number | None = None
    mirostat_eta: Number | None = None
    adaptive_target: Number | None = None  # acts only with "adaptive_p" among the samplers; < 0 = off
    adaptive_decay: Annotated[StrictFloat, Field(ge=0, le=0.99)] | None = None
    seed: _int(-(2**63), 2**64 - 1) | None = None
    min_keep: _int(0) = 0
    ignore_eos: StrictBool | None = None


class TokenizeRequest(BaseModel):
    """The /tokenize body."""

    model_config = ConfigDict(extra="allow")

    content: StrictStr | list[Union[StrictInt, StrictStr]] = ""
    add_special: StrictBool = False
    parse_special: StrictBool = True
    with_pieces: StrictBool = False


class DetokenizeRequest(BaseModel):
    """The /detokenize body."""

    model_config = ConfigDict(extra="allow")

    tokens: list[StrictInt] = Field(default_factory=list)


class PropsRequest(BaseModel):
    """The POST /props body (with --props): server-wide defaults; a field left out keeps its value."""

    model_config = ConfigDict(extra="forbid")

    system_prompt: StrictStr | None = None  # system message of chat requests that bring none ("" = none)
    stop: list[StrictStr] | None = None  # stop strings of requests that give none (llama-server's antiprompts)


# Request fields named as in SamplingParams; those SamplingDefaults also holds have a server-wide
# default (the command line), the others the engine's own (SamplingParams' defaults).
_SHARED_SAMPLING_FIELDS = tuple(
    f.name for f in dataclasses.fields(SamplingParams) if f.name in CompletionRequest.model_fields
)
_SERVER_DEFAULTS = frozenset(f.name for f in dataclasses.fields(SamplingDefaults))
_FLOAT_FIELDS = frozenset(f.name for f in dataclasses.fields(SamplingParams) if f.type == "float")


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err["loc"]) or "body"
        parts.append(f"'{loc}': {err['msg']}")
    return "Invalid request: " + "; ".join(parts)


def parse_model(model: type[M], body: Any) -> M:
    """Validate a decoded JSON body against a request model; errors are 400 invalid_request_error."""
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidRequest(validation_message(exc)) from None


def parse_request(body: Any) -> CompletionRequest:
    return parse_model(CompletionRequest, body)


# --- prompts ---

def _is_token(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def tokenize_prompts(prompt: Any, tokenize: Tokenize, n_vocab: int, tokenize_media=None) -> list[list[int]]:
    """llama-server's prompt forms: a string, token ids, a mix, a {"prompt_string": ...} object (with
    "multimodal_data": base64 media for the markers in its text, through tokenize_media), or an array of
    those (several prompts)."""
    if prompt is None:
        raise InvalidRequest('"prompt" is required')
    if isinstance(prompt, (str, dict)):
        prompts = [tokenize_one(prompt, tokenize, tokenize_media)]
    elif isinstance(prompt, list):
        if not prompt:
            raise InvalidRequest('"prompt" must not be an empty array')
        if any(_is_token(x) for x in prompt):
            prompts = [tokenize_mixed(prompt, tokenize)]
        else:
            prompts = [tokenize_one(p, tokenize, tokenize_media) for p in prompt]
    else:
        raise InvalidRequest('"prompt" must be a string, an array of token ids, or an array of prompts')
    for tokens in prompts:
        if not isinstance(tokens, list):
            continue  # a prompt with media, made by the model's own tokenizer
        if not tokens:
            raise InvalidRequest("empty prompt: the prompt must contain at least one token")
        bad = [t for t in tokens if not 0 <= t < n_vocab]
        if bad:
            raise InvalidRequest(f"invalid token id {bad[0]} in prompt (vocabulary has {n_vocab} tokens)")
    return prompts


def tokenize_one(p: Any, tokenize: Tokenize, tokenize_media=None) -> list[int]:
    """One prompt of tokenize_prompts (a string, a mix, a {"prompt_string"} object); with media, the
    model's MediaPrompt."""
    if isinstance(p, str):
        return tokenize(p, True)
    if isinstance(p, list):
        return tokenize_mixed(p, tokenize)
    if isinstance(p, dict) and "prompt_string" in p:
        text = p["prompt_string"]
        if "multimodal_data" in p:
            data = p["multimodal_data"]
            if tokenize_media is None:
                raise MediaUnsupported('"prompt"', "multimodal")
            if not isinstance(data, list) or not isinstance(text, str):
                raise InvalidRequest('"multimodal_data" must be an array of base64 strings, with a string "prompt_string"')
            return tokenize_media(text, [media_input.b64(d, f'"multimodal_data"[{i}]') for i, d in enumerate(data)])
        if isinstance(text, str):
            return tokenize(text, True)
        if isinstance(text, list):
            return tokenize_mixed(text, tokenize)
        raise InvalidRequest('"prompt_string" must be a string or an array of token ids and strings')
    raise InvalidRequest("each prompt must be a string, an array of token ids and strings, "
                         'or an object with a "prompt_string"')


def tokenize_mixed(items: list, tokenize: Tokenize) -> list[int]:
    out: list[int] = []
    for i, x in enumerate(items):
        if _is_token(x):
            out.append(x)
        elif isinstance(x, str):
            out.extend(tokenize(x, i == 0))
        else:
            raise InvalidRequest("a prompt array may only hold token ids and strings")
    return out


def tokenize_content(req: TokenizeRequest, tokenizer: Tokenizer) -> list[int]:
    """A /tokenize request's content as tokens: special tokens added (when asked) before the first piece only."""
    def tokenize(text: str, first: bool) -> list[int]:
        return tokenizer.tokenize(text, add_special=req.add_special and first, parse_special=req.parse_special)

    content = req.content
    return tokenize(content, True) if isinstance(content, str) else tokenize_mixed(content, tokenize)


# --- sampling ---

def parse_samplers(value: list[str] | str | None) -> list[str]:
    if value is None:
        return list(DEFAULT_SAMPLERS)
    if isinstance(value, str):
        names = []
        for ch in value:
            if ch not in SAMPLER_CHARS:
                raise InvalidRequest(f"unknown sampler character '{ch}' in \"samplers\"")
            names.append(SAMPLER_CHARS[ch])
        return names
    names = []
    for name in value:
        canonical = _SAMPLER_LOOKUP.get(name.lower().replace("-", "").replace("_", ""))
        if canonical is None:
            raise InvalidRequest(f"unknown sampler '{name}' in \"samplers\"")
        names.append(canonical)
    return names


def parse_logit_bias(value: Any, tokenize: Tokenize, n_vocab: int) -> list[tuple[int, float]]:
    """[[id|string, bias|false], ...] or {"id"|string: bias|false}; false means never sample it."""
    if value is None:
        return []
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        pairs = []
        for item in value:
            if isinstance(item, list) and len(item) == 2:
                pairs.append((item[0], item[1]))
            elif isinstance(item, dict) and "token" in item and "bias" in item:
                pairs.append((item["token"], item["bias"]))
            else:
                raise InvalidRequest('"logit_bias" entries must be [token, bias] pairs')
    else:
        raise InvalidRequest('"logit_bias" must be an array of [token, bias] pairs or an object')

    out: list[tuple[int, float]] = []
    for key, bias in pairs:
        if bias is False:
            b = -math.inf
        elif isinstance(bias, (int, float)) and not isinstance(bias, bool) and -FLOAT32_MAX <= bias <= FLOAT32_MAX:
            b = float(bias)
        else:
            raise InvalidRequest(f'"logit_bias" value for {key!r} must be a number or false')
        if _is_token(key):
            ids = [key]
        elif isinstance(key, str) and key.lstrip("-").isdigit():
            ids = [int(key)]
        elif isinstance(key, str):
            ids = tokenize(key, False)
        else:
            raise InvalidRequest('"logit_bias" keys must be token ids or strings')
        for t in ids:
            if not 0 <= t < n_vocab:
                raise InvalidRequest(f'"logit_bias" token id {t} is out of range')
            out.append((t, b))
    return out


def build_tasks(
    req: CompletionRequest,
    prompts: list[list[int]],
    defaults: SamplingDefaults,
    tokenize: Tokenize,
    n_vocab: int,
    cache_reuse: int = 0,
    spec: SpecParams | None = None,
) -> list[Task]:
    """spec: the server's speculative decoding settings (None: the engine's, unless the request names its own)."""
    if req.n_probs < 0:
        raise InvalidRequest('"n_probs" must be >= 0')
    if req.n_cache_reuse is not None and req.n_cache_reuse < 0:
        raise InvalidRequest('"n_cache_reuse" must be >= 0')
    if req.id_slot < -1:
        raise InvalidRequest('"id_slot" must be -1 or a slot id')
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    if not stop:
        stop = list(defaults.stop)  # -r / POST /props, as llama-server's reverse prompts
    params = sampling_params(req, defaults, tokenize, n_vocab)
    spec = speculative_params(req, spec)
    return [
        Task(
            # a prompt with media (the engine's MediaPrompt) carries where its chunks sit
            prompt=getattr(tokens, "tokens", tokens), media=getattr(tokens, "spans", ()),
            media_owner=getattr(tokens, "owner", None), params=params, n_predict=_n_predict(req, defaults), stop=stop,
            cache_prompt=defaults.cache_prompt if req.cache_prompt is None else req.cache_prompt,
            cache_reuse=cache_reuse if req.n_cache_reuse is None else req.n_cache_reuse,
            id_slot=req.id_slot, n_keep=defaults.n_keep if req.n_keep is None else req.n_keep,
            n_discard=req.n_discard, t_max_predict_ms=req.t_max_predict_ms, stream=req.stream,
            timings_per_token=req.timings_per_token, return_progress=req.return_progress, index=i, lora=lora_map(req.lora),
            spec=spec,
        )
        for i, tokens in enumerate(prompts)
    ]


def completion_tasks(req: CompletionRequest, tokenizer: Tokenizer, defaults: TaskDefaults) -> list[Task]:
    """A parsed /completion request (also /infill's, its prompt the FIM tokens) as engine tasks."""
    tokenize = tokenizer.tokenize  # (text, add_special), special tokens parsed
    prompts = tokenize_prompts(req.prompt, tokenize, tokenizer.n_vocab, getattr(tokenizer, "tokenize_media", None))
    return build_tasks(req, prompts, defaults.sampling, tokenize, tokenizer.n_vocab, defaults.cache_reuse, defaults.speculative)


def sampling_params(req: CompletionRequest, defaults: SamplingDefaults, tokenize: Tokenize, n_vocab: int) -> SamplingParams:
    """The request's sampling parameters; a field it leaves out (or sends as null) takes the server's
    default, as llama-server starts every request from the sampling parameters of its command line."""
    values: dict[str, Any] = {}
    for name in _SHARED_SAMPLING_FIELDS:
        value = getattr(req, name)
        if value is None and name in _SERVER_DEFAULTS:
            value = getattr(defaults, name)
        if value is not None:
            values[name] = float(value) if name in _FLOAT_FIELDS else value
    seed = values.get("seed", RANDOM_SEED)
    values["seed"] = RANDOM_SEED if seed == -1 else seed & 0xFFFFFFFF
    if values.get("mirostat", 0) not in (0, 1, 2):
        raise InvalidRequest('"mirostat" must be 0, 1 or 2')
    if req.dry_base is not None and req.dry_base < 1.0:
        values["dry_base"] = float(defaults.dry_base)  # llama-server: a base below 1 means the server's
    if "adaptive_target" in values:
        values["adaptive_target"] = min(values["adaptive_target"], 1.0)  # clamped, as llama-server does
    if req.logit_bias is not None:  # the request's biases replace the server's -l ones (llama-server)
        values["logit_bias"] = parse_logit_bias(req.logit_bias, tokenize, n_vocab)
    else:  # -l ids are not checked against the vocabulary at start-up: out-of-range ones are dropped
        values["logit_bias"] = [(t, float(b)) for t, b in defaults.logit_bias if 0 <= t < n_vocab]
    if req.samplers is not None:
        values["samplers"] = parse_samplers(req.samplers)
    else:
        values["samplers"] = list(DEFAULT_SAMPLERS if defaults.samplers is None else defaults.samplers)
    values["dry_sequence_breakers"] = _dry_breakers(req, defaults)
    values["grammar"] = _grammar(req, defaults)
    return SamplingParams(**values)


def speculative_params(req: CompletionRequest, server: SpecParams | None) -> SpecParams | None:
    """The task's speculative settings: the server's, with each field the request gives (in its
    `speculative` object or flat as "speculative.<field>", the flat ones winning) in place."""
    given: dict[str, Any] = req.speculative.model_dump(exclude_none=True) if req.speculative else {}
    flat = {k.removeprefix("speculative."): v for k, v in (req.model_extra or {}).items() if k.startswith("speculative.")}
    if flat:
        try:
            given.update(SpeculativeFields.model_validate(flat).model_dump(exclude_none=True))
        except ValidationError as exc:
            raise InvalidRequest(validation_message(exc).replace("'", "'speculative.", 1)) from None
    given = {k: v for k, v in given.items() if k in SpeculativeFields.model_fields}
    if not given:
        return server
    changes: dict[str, Any] = {k: given[k] for k in ("n_max", "n_min", "p_min", "ngram_size_n", "ngram_size_m") if k in given}
    if "p_min" in changes:
        changes["p_min"] = float(changes["p_min"])
    if "type" in given:
        value = given["type"]
        names = [t.strip() for t in (value.split(",") if isinstance(value, str) else value) if t.strip()]
        unknown = [t for t in names if t not in SPEC_TYPES]
        if unknown:
            raise InvalidRequest(f'unknown speculative decoding type "{unknown[0]}" (one of {", ".join(SPEC_TYPES)})')
        changes["types"] = spec_type_order(names)
    return dataclasses.replace(server or SpecParams(), **changes)


def _dry_breakers(req: CompletionRequest, defaults: SamplingDefaults) -> list[str]:
    if req.dry_sequence_breakers is not None:
        if not req.dry_sequence_breakers:
            raise InvalidRequest('"dry_sequence_breakers" must be a non-empty array of strings')
        return list(req.dry_sequence_breakers)
    return list(DEFAULT_DRY_BREAKERS if defaults.dry_sequence_breakers is None else defaults.dry_sequence_breakers)


def _grammar(req: CompletionRequest, defaults: SamplingDefaults) -> str:
    # The server's --grammar / --json-schema apply only to a request that brings no constraint of its
    # own (an OpenAI response_format arrives here as json_schema, tool-call grammars replace it later).
    if req.grammar or req.json_schema is not None:
        return request_grammar(req.grammar or "", req.json_schema)
    if defaults.grammar:
        return defaults.grammar
    if defaults.json_schema is not None:
        return schema_grammar(defaults.json_schema, "--json-schema")
    return ""


def lora_map(entries: list[LoraScale] | None) -> dict[int, float] | None:
    """Adapter id -> scale (a repeated id: the last one counts, as in llama-server); None when none is given."""
    return {e.id: float(e.scale) for e in entries} if entries else None


def parse_lora_scales(body: Any) -> dict[int, float]:
    """The POST /lora-adapters body: [{"id", "scale"}, ...]."""
    if not isinstance(body, list):
        raise InvalidRequest("Request body must be an array")
    try:
        entries = LoraScales.model_validate(body).root
    except ValidationError as exc:
        raise InvalidRequest(validation_message(exc)) from None
    return lora_map(entries) or {}


def lora_json(scales: tuple[float, ...]) -> list[dict[str, Any]]:
    return [{"id": i, "scale": s} for i, s in enumerate(scales)]


def _n_predict(req: CompletionRequest, defaults: SamplingDefaults) -> int:
    # As in llama-server, -n is only the default: a request's own n_predict (other than -1) wins.
    asked = req.n_predict if req.n_predict is not None else req.max_tokens
    n = defaults.n_predict if asked is None or asked == -1 else asked
    cap = defaults.max_predict  # --max-predict (llamaserve's own): the operator's ceiling
    return cap if cap > 0 and (n < 0 or n > cap) else n


# --- responses ---

def generation_settings(task: Task, model_alias: str) -> dict[str, Any]:
    p = task.params
    return {
        "n_predict": task.n_predict,
        "seed": p.seed,
        "temperature": p.temperature,
        "dynatemp_range": p.dynatemp_range,
        "dynatemp_exponent": p.dynatemp_exponent,
        "top_k": p.top_k,
        "top_p": p.top_p,
        "min_p": p.min_p,
        "top_n_sigma": p.top_n_sigma,
        "xtc_probability": p.xtc_probability,
        "xtc_threshold": p.xtc_threshold,
        "typical_p": p.typical_p,
        "repeat_last_n": p.repeat_last_n,
        "repeat_penalty": p.repeat_penalty,
        "presence_penalty": p.presence_penalty,
        "frequency_penalty": p.frequency_penalty,
        "dry_multiplier": p.dry_multiplier,
        "dry_base": p.dry_base,
        "dry_allowed_length": p.dry_allowed_length,
        "dry_penalty_last_n": p.dry_penalty_last_n,
        "dry_sequence_breakers": p.dry_sequence_breakers,
        "mirostat": p.mirostat,
        "mirostat_tau": p.mirostat_tau,
        "mirostat_eta": p.mirostat_eta,
        "adaptive_target": p.adaptive_target,
        "adaptive_decay": p.adaptive_decay,
        "stop": task.stop,
        "max_tokens": task.n_predict,
        "n_keep": task.n_keep,
        "n_discard": task.n_discard,
        "ignore_eos": p.ignore_eos,
        "stream": task.stream,
        "logit_bias": [{"bias": None if math.isinf(b) else b, "token": t} for t, b in p.logit_bias],  # -inf: null
        "n_probs": p.n_probs,
        "min_keep": p.min_keep,
        "grammar": p.grammar,
        "samplers": p.samplers,
        "speculative.types": spec_types_name(task.spec),
        "timings_per_token": task.timings_per_token,
        "post_sampling_probs": p.post_sampling_probs,
        "lora": _task_lora(task),
        "model": model_alias,
    }


def spec_types_name(spec: SpecParams | None) -> str:
    """The draft types as llama-server names them in generation settings: comma-separated, or "none"."""
    return ",".join(spec.types) if spec is not None and spec.types else "none"


def _task_lora(task: Task) -> list[dict[str, Any]]:
    # every adapter's scale once the engine has started the task, else what the request asked for
    if task.lora_scales is not None:
        return lora_json(task.lora_scales)
    return [{"id": i, "scale": s} for i, s in sorted((task.lora or {}).items())]


def _text(piece: bytes) -> str:
    # A token may hold part of a UTF-8 character: show only its complete characters.
    return piece.decode("utf-8", "ignore")


def probs_json(probs: list[TokenProb], post_sampling: bool) -> list[dict[str, Any]]:
    key, top_key = ("prob", "top_probs") if post_sampling else ("logprob", "top_logprobs")
    return [
        {
            "id": p.id,
            "token": _text(p.piece),
            "bytes": list(p.piece),
            key: _finite(p.value),
            top_key: [{"id": i, "token": _text(b), "bytes": list(b), key: _finite(v)} for i, b, v in p.top],
        }
        for p in probs
    ]


def _finite(x: float) -> float:
    # JSON has no -inf; llama-server sends the lowest float instead
    return x if math.isfinite(x) else -3.4028234663852886e38


def final_json(r: Result, model_alias: str, prompt_text: str, return_tokens: bool, fields: list[str] | None) -> dict[str, Any]:
    task = r.task
    res: dict[str, Any] = {
        "index": task.index,
        "content": r.text,
        "tokens": r.tokens if return_tokens else [],
        "id_slot": r.id_slot,
        "stop": True,
        "model": model_alias,
        "tokens_predicted": r.n_decoded,
        "tokens_evaluated": r.n_prompt,
        "generation_settings": generation_settings(task, model_alias),
        "prompt": prompt_text,
        "has_new_line": "\n" in r.text if not task.stream else False,
        "truncated": r.truncated,
        "stop_type": r.stop_type,
        "stopping_word": r.stopping_word,
        "tokens_cached": r.n_cached,
        "timings": r.timings.as_dict() if r.timings else {},
    }
    if task.params.n_probs > 0 and (r.probs or not task.stream):
        res["completion_probabilities"] = probs_json(r.probs, task.params.post_sampling_probs)
    if fields:
        res = select_fields(res, fields)
    return res


def partial_json(r: Result, return_tokens: bool) -> dict[str, Any]:
    res: dict[str, Any] = {
        "index": r.task.index,
        "content": r.text,
        "tokens": r.tokens if return_tokens else [],
        "stop": False,
        "id_slot": r.id_slot,
        "tokens_predicted": r.n_decoded,
        "tokens_evaluated": len(r.task.prompt),
    }
    if r.timings is not None:
        res["timings"] = r.timings.as_dict()
    if r.progress is not None:
        res["prompt_progress"] = r.progress.as_dict()
    if r.probs:
        res["completion_probabilities"] = probs_json(r.probs, r.task.params.post_sampling_probs)
    return res


def select_fields(res: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """`response_fields`: keep only the named (possibly nested, "a/b") fields, flattened by path."""
    out: dict[str, Any] = {}
    for path in fields:
        node: Any = res
        for part in path.split("/"):
            if isinstance(node, dict) and part in node:
                node = node[part]
            else:
                node = None
                break
        if node is not None:
            out[path] = node
    return out
