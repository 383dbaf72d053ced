"""Ollama's API: /api/chat and /api/generate requests → engine tasks (`chat_tasks`, `generate_tasks`, through
chat or native requests), Results → Ollama's objects.

Pure translation. Streaming is NDJSON (on unless "stream": false); durations
are nanoseconds, as Ollama reports them.
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime, timezone
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr

from llamaserve.engine.types import Result, Task, TokenProb
from llamaserve.errors import InvalidRequest
from llamaserve.protocol import media as media_input
from llamaserve.protocol import native, openai
from llamaserve.protocol.openai import validate_model
from llamaserve.protocol.task_defaults import TaskDefaults
from llamaserve.protocol.tokenizer import Tokenizer

VERSION = "0.12.0"  # the Ollama API level these routes follow; clients check it

# Ollama option name → native llama.cpp field
_OPTIONS = {
    "temperature": "temperature", "top_k": "top_k", "top_p": "top_p", "min_p": "min_p", "typical_p": "typical_p",
    "num_predict": "n_predict", "seed": "seed", "stop": "stop", "repeat_penalty": "repeat_penalty",
    "repeat_last_n": "repeat_last_n", "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
    "mirostat": "mirostat", "mirostat_tau": "mirostat_tau", "mirostat_eta": "mirostat_eta", "num_keep": "n_keep",
}
# Options about how the model is loaded: fixed by the server's command line, so accepted and not applied.
_LOAD_OPTIONS = {
    "num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "use_mlock", "num_thread", "low_vram", "f16_kv",
    "vocab_only", "numa", "penalize_newline",
}


class _Base(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: StrictStr = ""
    stream: StrictBool = True
    format: Any = None
    options: dict[str, Any] | None = None
    think: StrictBool | StrictStr | None = None
    keep_alive: Any = None
    logprobs: StrictBool | None = None
    top_logprobs: StrictInt | None = None


class ChatRequest(_Base):
    messages: list[dict[str, Any]] = []
    tools: list[dict[str, Any]] | None = None


class EmbedRequest(BaseModel):
    """Ollama's /api/embed body: "input" is a string or an array of strings."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"required": ["input"]})

    model: StrictStr = ""
    input: StrictStr | list[StrictStr] = ""
    dimensions: StrictInt | None = None
    options: dict[str, Any] | None = None
    keep_alive: Any = None


class GenerateRequest(_Base):
    prompt: StrictStr = ""
    suffix: StrictStr | None = None
    system: StrictStr | None = None
    template: StrictStr | None = None
    context: list[StrictInt] | None = None
    raw: StrictBool = False
    images: list[Any] | None = None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def options_fields(options: dict[str, Any] | None, n_ctx: int) -> tuple[dict[str, Any], list[str]]:
    """Native fields for Ollama `options`, plus notes on options that cannot take effect (for the log)."""
    fields: dict[str, Any] = {}
    notes: list[str] = []
    for key, value in (options or {}).items():
        if key in _OPTIONS:
            fields[_OPTIONS[key]] = value
        elif key == "num_ctx":
            if isinstance(value, int) and value > n_ctx:
                notes.append(f"num_ctx={value} exceeds this server's context per slot ({n_ctx}, set with -c/-np)")
        elif key not in _LOAD_OPTIONS:
            raise InvalidRequest(f'unknown option "{key}" in "options"')
    return fields, notes


def _format_field(fmt: Any) -> dict[str, Any] | None:
    if fmt in (None, ""):
        return None
    if fmt == "json":
        return {"type": "json_object"}
    if isinstance(fmt, dict):
        return {"type": "json_schema", "json_schema": {"name": "format", "schema": fmt}}
    raise InvalidRequest('"format" must be "json" or a JSON schema object')


def _think_kwargs(think: bool | str | None) -> dict[str, Any]:
    if think is None:
        return {}
    if isinstance(think, bool):
        return {"enable_thinking": think}
    if think in ("low", "medium", "high"):
        return {"enable_thinking": True, "reasoning_effort": think}
    raise InvalidRequest('"think" must be true, false, "low", "medium" or "high"')


def _common(req: _Base, n_ctx: int) -> tuple[dict[str, Any], list[str]]:
    fields, notes = options_fields(req.options, n_ctx)
    fields["stream"] = req.stream
    fmt = _format_field(req.format)
    if fmt is not None:
        fields["response_format"] = fmt
    kwargs = _think_kwargs(req.think)
    if kwargs:
        fields["chat_template_kwargs"] = kwargs
    if req.logprobs:
        fields["logprobs"] = True
        if req.top_logprobs is not None:
            fields["top_logprobs"] = req.top_logprobs
    return fields, notes


def chat_tasks(body: Any, n_ctx: int, server: Callable[[], openai.ChatServer],
               report: Callable[[list[str]], None] = lambda notes: None) -> tuple[ChatRequest, openai.Plan, list[Task]]:
    """An /api/chat body as the request (its model name and stream flag answer it) and the plan and engine
    tasks of the chat request it is rewritten as. n_ctx: the context per slot, which options.num_ctx is
    checked against. report gets the notes on options that cannot take effect as soon as the options are
    read, so a request refused later is still logged with them. `server` is called once the Ollama checks
    have passed (see openai.ChatServer)."""
    req, chat, notes = chat_to_openai(body, n_ctx)
    report(notes)
    s = server()
    plan, tasks = openai.chat_tasks(chat, s.setup, s.tokenizer, s.defaults)
    return req, plan, tasks


def chat_to_openai(body: Any, n_ctx: int) -> tuple[ChatRequest, dict[str, Any], list[str]]:
    req: ChatRequest = validate_model(ChatRequest, body)
    chat, notes = _common(req, n_ctx)
    chat["messages"] = [_convert_message(m, i) for i, m in enumerate(req.messages)]
    if req.tools:
        chat["tools"] = req.tools
    if "n_predict" in chat:
        chat["max_tokens"] = chat.pop("n_predict")
    return req, chat, notes


def _with_images(text: str, images: Any, where: str) -> str | list[dict[str, Any]]:
    """Ollama's "images" (base64 strings) after the text, as OpenAI content parts: the chat plan takes
    them where a projector is loaded and refuses them where not."""
    if not images:
        return text
    if not isinstance(images, list) or not all(isinstance(b, str) for b in images):
        raise InvalidRequest(f'{where}: "images" must be an array of base64 strings')
    return [{"type": "text", "text": text}] + [{"type": "image_url", "image_url": {"url": b if b.startswith("data:") else media_input.data_uri(b)}}
                                               for b in images]


def _convert_message(msg: dict[str, Any], i: int) -> dict[str, Any]:
    out: dict[str, Any] = {"role": msg.get("role"), "content": _with_images(msg.get("content") or "", msg.get("images"), f"messages[{i}]")}
    if msg.get("thinking"):
        out["reasoning_content"] = msg["thinking"]
    if msg.get("tool_calls"):
        out["tool_calls"] = [
            {"id": f"call_{i}_{j}", "type": "function",
             "function": {"name": c.get("function", {}).get("name", ""),
                          "arguments": json.dumps(c.get("function", {}).get("arguments", {}))}}
            for j, c in enumerate(msg["tool_calls"])
        ]
    if msg.get("role") == "tool" and msg.get("tool_name"):
        out["name"] = msg["tool_name"]
    return out


def generate_tasks(body: Any, n_ctx: int, tokenizer: Tokenizer, defaults: TaskDefaults,
                   chat_setup: Callable[[], openai.ChatSetup],
                   report: Callable[[list[str]], None] = lambda notes: None) -> tuple[GenerateRequest, openai.Plan, list[Task]]:
    """An /api/generate body as the request (its model name and stream flag answer it), a plan and engine
    tasks: the chat path for a templated prompt, its tokens after the request's "context"; a native
    completion for a raw one. chat_setup is asked for only when the prompt is templated (a raw prompt runs
    even where the template cannot be used). report gets the notes on options that cannot take effect, as
    soon as they are read (see chat_tasks)."""
    req, fields, notes = _generate_to_openai(body, n_ctx)
    report(notes)
    context = list(req.context or [])
    bad = [t for t in context if not 0 <= t < tokenizer.n_vocab]
    if bad and bad[0] < 0:
        # the positions of an image in a returned context (engine/media.py): its pixels are not in it
        raise InvalidRequest('"context" holds an image\'s positions, which cannot be sent back: send the '
                             'conversation again with its "images"')
    if bad:
        raise InvalidRequest(f'"context" holds an invalid token id {bad[0]}')
    if req.raw or not req.prompt and not req.system:
        return req, *_raw_tasks(fields, req.prompt, context, tokenizer, defaults)
    plan, tasks = openai.chat_tasks(fields, chat_setup(), tokenizer, defaults)
    for t in tasks:
        t.prompt = context + t.prompt
        t.media = tuple(dataclasses.replace(m, start=m.start + len(context)) for m in t.media)
    return req, plan, tasks


def _generate_to_openai(body: Any, n_ctx: int) -> tuple[GenerateRequest, dict[str, Any], list[str]]:
    """A generate request as a chat request (templated); `raw` prompts run natively instead."""
    req: GenerateRequest = validate_model(GenerateRequest, body)
    if req.images and req.raw:
        raise InvalidRequest('"images" need a templated prompt: with "raw" the prompt has no place for them')
    if req.suffix:
        raise InvalidRequest('"suffix" is not supported: this model has no fill-in-the-middle tokens')
    if req.template:
        raise InvalidRequest('"template" is not supported: the server renders the model\'s own chat template')
    fields, notes = _common(req, n_ctx)
    if not req.raw:
        messages = [{"role": "system", "content": req.system}] if req.system else []
        fields["messages"] = messages + [{"role": "user", "content": _with_images(req.prompt, req.images, '"prompt"')}]
        if "n_predict" in fields:
            fields["max_tokens"] = fields.pop("n_predict")
    return req, fields, notes


def _raw_tasks(fields: dict[str, Any], prompt: str, context: list[int], tokenizer: Tokenizer,
               defaults: TaskDefaults) -> tuple[openai.Plan, list[Task]]:
    """A raw prompt runs as a native completion: no template."""
    fmt = fields.pop("response_format", None)
    if fmt is not None:
        fields["json_schema"] = fmt.get("json_schema", {}).get("schema") or {"type": "object"}
    fields.pop("chat_template_kwargs", None)
    logprobs = fields.pop("top_logprobs", 0) if fields.pop("logprobs", False) else None
    if logprobs is not None:
        fields["n_probs"] = max(1, logprobs)
    tokenize = tokenizer.tokenize
    tokens = context + (tokenize(prompt, not context) if prompt else [])
    if not tokens:
        tokens = tokenize(" ", True)
    fields["prompt"] = tokens
    fields["return_tokens"] = True
    req = native.parse_request(fields)
    plan = openai.Plan(native=req, n=1, stream=req.stream, include_usage=False, logprobs=logprobs, model="")
    tasks = native.build_tasks(req, [tokens], defaults.sampling, tokenize, tokenizer.n_vocab, defaults.cache_reuse,
                               defaults.speculative)
    return plan, tasks


# --- responses ---

def done_reason(r: Result) -> str:
    return "length" if r.stop_type == "limit" else "stop"


def stats(r: Result, t_start: float) -> dict[str, Any]:
    t = r.timings
    return {
        "total_duration": int((time.perf_counter() - t_start) * 1e9),
        "load_duration": 0,
        "prompt_eval_count": r.n_prompt,
        "prompt_eval_duration": int(t.prompt_ms * 1e6) if t else 0,
        "eval_count": r.n_decoded,
        "eval_duration": int(t.predicted_ms * 1e6) if t else 0,
    }


def logprobs_json(probs: list[TokenProb], top_n: int) -> list[dict[str, Any]]:
    def text(b: bytes) -> str:
        return b.decode("utf-8", "ignore")

    return [
        {"token": text(p.piece), "logprob": p.value, "bytes": list(p.piece),
         "top_logprobs": [{"token": text(b), "logprob": v, "bytes": list(b)} for _, b, v in p.top[:top_n]]}
        for p in probs
    ]


def chat_message(message: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    if message.get("reasoning_content"):
        out["thinking"] = message["reasoning_content"]
    if message.get("tool_calls"):
        calls = []
        for c in message["tool_calls"]:
            try:
                args = json.loads(c["function"]["arguments"] or "{}")
            except ValueError:
                args = {}
            calls.append({"function": {"name": c["function"]["name"], "arguments": args}})
        out["tool_calls"] = calls
    return out


def chat_chunk(model: str, message: dict[str, Any], done: bool = False, **extra: Any) -> dict[str, Any]:
    return {"model": model, "created_at": now_iso(), "message": message, "done": done, **extra}


def generate_chunk(model: str, text: str, thinking: str = "", done: bool = False, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "created_at": now_iso(), "response": text, "done": done}
    if thinking:
        out["thinking"] = thinking
    out.update(extra)
    return out


def model_entry(name: str, size: int, details: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "model": name, "modified_at": now_iso(), "size": size, "digest": "", "details": details}


def details(desc: str, n_params: int) -> dict[str, Any]:
    parts = desc.split()
    family = parts[0] if parts else ""
    quant = parts[-1] if len(parts) > 1 else ""
    return {
        "parent_model": "", "format": "gguf", "family": family, "families": [family] if family else None,
        "parameter_size": _human_params(n_params), "quantization_level": quant,
    }


def _human_params(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    return f"{n / 1e6:.0f}M"
