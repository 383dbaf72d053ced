"""OpenAI chat completions and completions requests: JSON body → a Plan and the engine Tasks that carry it out.

Pure translation. An OpenAI request becomes a native request (every llama.cpp
field stays available as an extension), so sampling is resolved in one place
(protocol/native.py). Chat messages become a prompt through the `Render`
function of the server's ChatSetup; text becomes tokens through the Tokenizer
handed in.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from llamaserve.chat import TemplateCaps
from llamaserve.chat.formats import ChatFormat
from llamaserve.chat.output import REASONING_FORMATS, OutputParser
from llamaserve.chat.tool_grammar import ToolGrammar
from llamaserve.config import SamplingDefaults
from llamaserve.engine.types import RANDOM_SEED, BudgetSpec, SpecParams, Task
from llamaserve.errors import InvalidRequest, MediaUnsupported
from llamaserve.grammar import SchemaError, schema_to_gbnf
from llamaserve.protocol import media as media_input
from llamaserve.protocol import native
from llamaserve.protocol.openai.render import ParsedOutput, PlainOutput
from llamaserve.protocol.task_defaults import TaskDefaults
from llamaserve.protocol.tokenizer import Tokenize, Tokenizer

# (messages, add_generation_prompt, tools, template kwargs, continue_final_message) -> prompt text
Render = Callable[[list[dict[str, Any]], bool, "list[dict] | None", dict[str, Any], bool], str]

MAX_TOP_LOGPROBS = 20
MAX_COMPLETION_LOGPROBS = 5

class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: StrictBool = False


class _Common(BaseModel):
    """Fields both OpenAI endpoints share; everything else passes through as native llama.cpp fields."""

    model_config = ConfigDict(extra="allow")

    model: StrictStr | None = None
    n: StrictInt = 1
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    max_tokens: StrictInt | None = None
    user: StrictStr | None = None
    verbose: StrictBool | None = None  # llama-server's: add "__verbose" (None: the server's -v)


class ChatCompletionRequest(_Common):
    messages: list[dict[str, Any]]
    max_completion_tokens: StrictInt | None = None
    logprobs: StrictBool | None = None
    top_logprobs: StrictInt | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    parallel_tool_calls: StrictBool | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    add_generation_prompt: StrictBool = True
    # vLLM's and transformers' name for the prefill: true (or "content") continues the final assistant message
    continue_final_message: StrictBool | StrictStr | None = None
    # llama-server's reasoning budget: -1 = the server's --reasoning-budget
    reasoning_budget_tokens: Annotated[StrictInt, Field(ge=-1)] | None = None
    thinking_budget_tokens: Annotated[StrictInt, Field(ge=-1)] | None = None
    reasoning_budget_message: StrictStr | None = None
    reasoning_effort: StrictStr | None = None  # "none" turns thinking off; others are handed to the template


class CompletionsRequest(_Common):
    prompt: Any = None
    echo: StrictBool = False
    suffix: StrictStr | None = None
    logprobs: StrictInt | None = None
    best_of: StrictInt | None = None


# Keys that mean something different to OpenAI than to the native API, or nothing to it.
_CHAT_ONLY = {
    "messages", "n", "stream_options", "max_completion_tokens", "logprobs", "top_logprobs", "response_format",
    "tools", "tool_choice", "parallel_tool_calls", "chat_template_kwargs", "add_generation_prompt", "user",
    "continue_final_message", "model", "prompt", "reasoning_budget_tokens", "thinking_budget_tokens", "reasoning_budget_message",
    "reasoning_effort",
}
_COMPLETIONS_ONLY = {"n", "stream_options", "echo", "suffix", "logprobs", "best_of", "user", "model"}


validate_model = native.parse_model  # a body against a request model; errors are 400 invalid_request_error



@dataclass
class Plan:
    """What one OpenAI request asks the engine for, and how to answer it."""

    native: native.CompletionRequest
    n: int
    stream: bool
    include_usage: bool
    logprobs: int | None  # top alternatives per token to report; None = no logprobs
    model: str
    prompt_text: str = ""  # the rendered chat prompt
    echo: bool = False
    output: Callable[[], Any] = PlainOutput  # makes the parser of one choice's generated text
    tool_grammar: ToolGrammar | None = None  # constrains tool calls (set on the tasks, not a request field)
    budget: ReasoningBudgetText | None = None  # caps the tokens spent thinking
    verbose: bool = False  # responses carry "__verbose": the native response of the same result
    media: tuple = ()  # the images and audio of the prompt, in the order of its media markers (protocol/media.py)


@dataclass(frozen=True)
class ReasoningBudgetText:
    """A reasoning budget as text; the engine side tokenizes the markers (see build_tasks)."""

    tokens: int
    start: str  # the family's opening marker
    end: str  # its closing marker
    message: str  # said before the closing marker when the budget runs out
    open_in_prompt: bool  # the generation prompt opened the think block


def _check_n(n: int, max_n: int) -> None:
    if not 1 <= n <= max_n:
        raise InvalidRequest(f'"n" must be between 1 and {max_n} (the number of server slots), got {n}')


def _stream_flags(req: _Common) -> bool:
    if req.stream_options is not None and not req.stream:
        raise InvalidRequest('"stream_options" is only allowed when "stream" is true')
    return bool(req.stream_options and req.stream_options.include_usage)


# --- chat messages ---

_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


def normalize_messages(messages: list[dict[str, Any]], allow_empty: bool = False,
                       media: list | None = None) -> list[dict[str, Any]]:
    """Check OpenAI messages and bring them into the shape chat templates expect.

    Content arrays become one string (text parts joined by newlines, as llama.cpp
    does); tool-call arguments given as JSON strings become objects, since
    templates index into them.
    """
    if not messages and not allow_empty:
        raise InvalidRequest('"messages" must be a non-empty array')
    out = []
    for i, msg in enumerate(messages):
        role = msg.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise InvalidRequest(f'messages[{i}]: "role" must be one of {sorted(_ROLES)}')
        m = dict(msg)
        if role == "developer":
            m["role"] = "system"
        has_calls = bool(msg.get("tool_calls"))
        if "content" not in msg and not (role == "assistant" and has_calls):
            raise InvalidRequest(f'messages[{i}]: "content" is required' + (" (or \"tool_calls\")" if role == "assistant" else ""))
        m["content"] = _content_text(msg.get("content"), i, media)
        if has_calls:
            m["tool_calls"] = _tool_calls_for_template(msg["tool_calls"], i)
        out.append(m)
    return out


def prefill_text(content: Any) -> str:
    """The text of a continued assistant message: its text parts joined by a blank line."""
    if isinstance(content, list):
        return "\n\n".join(p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content or ""


def _content_text(content: Any, i: int, media: list | None = None) -> str:
    """The message's text; each image or audio part becomes the media marker where it sits, its data
    appended to `media` (None: media is refused, as for a text-only model). Text parts are joined with
    newlines, but none is put before or after a marker (as llama-server joins them)."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise InvalidRequest(f'messages[{i}]: "content" must be a string or an array of content parts')
    text, after_marker = "", False
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            text += ("\n" if text and not after_marker else "") + part["text"]
            after_marker = False
        elif media is not None and kind in ("image_url", "input_audio"):
            media.append(media_input.openai_part(part, f"messages[{i}]"))
            text += media_input.MARKER
            after_marker = True
        elif kind in ("image_url", "image", "input_image"):
            raise MediaUnsupported(f"messages[{i}]")
        elif kind in ("input_audio", "audio", "input_video", "video_url", "file"):
            raise MediaUnsupported(f"messages[{i}]", kind)
        else:
            raise InvalidRequest(f"messages[{i}]: unsupported content part type {kind!r} (expected \"text\")")
    return text


def _tool_calls_for_template(calls: Any, i: int) -> list[dict[str, Any]]:
    if not isinstance(calls, list):
        raise InvalidRequest(f'messages[{i}]: "tool_calls" must be an array')
    out = []
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InvalidRequest(f'messages[{i}]: each tool call needs "function" with a "name"')
        args = fn.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except ValueError:
                pass  # templates that print arguments verbatim still get the string
        out.append({**call, "type": call.get("type", "function"), "function": {**fn, "arguments": args}})
    return out


def server_template_kwargs(setup: "ChatSetup") -> dict[str, Any]:
    """The template variables every request starts from, as llama-server's default template kwargs:
    thinking on unless turned off (templates that check `enable_thinking` see it set; --reasoning off
    arrives in template_kwargs), --chat-template-kwargs, then --reasoning-effort and --reasoning-preserve
    (chat/template.py gives both under the other names templates read them by)."""
    kwargs = {"enable_thinking": True, **setup.template_kwargs}
    if setup.reasoning_effort not in ("", "default"):
        kwargs["reasoning_effort"] = setup.reasoning_effort
    if setup.reasoning_preserve is not None:
        kwargs["preserve_reasoning"] = setup.reasoning_preserve
    return kwargs


def render_prompt(req: ChatCompletionRequest, messages: list[dict[str, Any]], tools: list[dict] | None, setup: "ChatSetup") -> str:
    # the request's chat_template_kwargs override the server's; its reasoning_effort "none" turns
    # thinking off (and drops the server's effort), other efforts reach the template
    kwargs = {**server_template_kwargs(setup), **(req.chat_template_kwargs or {})}
    if req.reasoning_effort == "none":
        kwargs["enable_thinking"] = False
        kwargs.pop("reasoning_effort", None)
    elif req.reasoning_effort:
        kwargs["reasoning_effort"] = req.reasoning_effort
    last = messages[-1] if messages else {"role": ""}
    add_generation_prompt = req.add_generation_prompt
    # llama-server reads true, "content" and "reasoning_content"; anything else means no continuation
    continuing = req.continue_final_message is True or req.continue_final_message in ("content", "reasoning_content")
    if not continuing and setup.prefill_assistant and last["role"] == "assistant":
        if len(messages) >= 2 and messages[-2]["role"] == "assistant":
            raise InvalidRequest("Cannot have 2 or more assistant messages at the end of the list.")
        # Prefill: the model continues the final assistant message instead of starting a new one.
        continuing, add_generation_prompt = True, False
    if continuing:
        if add_generation_prompt:
            raise InvalidRequest("Cannot set both add_generation_prompt and continue_final_message to true.")
        if last["role"] != "assistant":
            raise InvalidRequest("continue_final_message needs the last message to be from the assistant.")
        if last.get("tool_calls") or req.messages[-1].get("tool_calls"):
            raise InvalidRequest("Cannot continue an assistant message that contains tool calls.")
        # the continued text's parts are joined by a blank line, as llama-server renders a prefill
        messages = [*messages[:-1], {**last, "content": prefill_text(req.messages[-1].get("content"))}]
        return setup.render(messages, False, tools, kwargs, True)
    return setup.render(messages, req.add_generation_prompt, tools, kwargs, False)


# --- requests ---

def _json_schema_of(response_format: dict[str, Any] | None) -> Any:
    if response_format is None:
        return None
    kind = response_format.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return response_format.get("schema") or {"type": "object"}
    if kind == "json_schema":
        wrapper = response_format.get("json_schema")
        if not isinstance(wrapper, dict) or "schema" not in wrapper:
            raise InvalidRequest('"response_format.json_schema.schema" is required for type "json_schema"')
        schema = wrapper["schema"]
        if not isinstance(schema, (dict, bool)):
            raise InvalidRequest('"response_format.json_schema.schema" must be a JSON Schema object')
        return schema if schema != {} else {"type": "object"}
    raise InvalidRequest(f'"response_format.type" must be "text", "json_object" or "json_schema", got {kind!r}')


@dataclass
class ChatSetup:
    """The server's chat side, fixed at startup: how messages become a prompt and output becomes a message."""

    render: Render
    format: ChatFormat
    caps: TemplateCaps | None  # None with libllama's built-in templates
    prefill_assistant: bool
    template_kwargs: dict[str, Any]
    reasoning_format: str
    max_n: int
    model_alias: str
    report: Callable[[str], None] = lambda problem: None  # why generated markup was not taken as a tool call
    reasoning_budget: int = -1  # --reasoning-budget: -1 unrestricted
    reasoning_budget_message: str = ""  # --reasoning-budget-message
    reasoning_effort: str = ""  # --reasoning-effort handed to the template ("" or "default": the template's)
    reasoning_preserve: bool | None = None  # --(no-)reasoning-preserve; None: the template's way
    skip_chat_parsing: bool = False  # --skip-chat-parsing: the output is plain content
    multimodal: bool = False  # a projector is loaded (--mmproj): image and audio parts are taken
    verbose: bool = False  # -v: responses carry "__verbose" unless a request says otherwise
    # markers the output parser must see as text, though they are special tokens (not rendered by default)
    special_pieces: dict[int, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class ChatServer:
    """The server's side of one chat request: the ChatSetup, the model's tokenizer, the task defaults as they
    are now. The Anthropic, Responses and Ollama chat_tasks take a function that gives it and call it only
    once their own family's checks have passed: a body its family refuses is a 400 even while the model
    loads (503) or where the chat template cannot be used (500); the chat path's own checks come after."""

    setup: ChatSetup
    tokenizer: Tokenizer
    defaults: TaskDefaults


def _tool_choice(req: ChatCompletionRequest) -> tuple[str, list[dict[str, Any]]]:
    """("none" | "auto" | "required", the tools calls may use). Normalizes req.tools in place: templates
    index into `description` and `parameters`, which clients may leave out."""
    tools = req.tools or []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not isinstance(fn, dict) \
                or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise InvalidRequest(f'tools[{i}] must be {{"type": "function", "function": {{"name": ..., "parameters": ...}}}}')
        tools[i] = {**tool, "type": "function", "function": {
            "description": "", "parameters": {"type": "object", "properties": {}}, **fn}}
    choice = req.tool_choice
    if choice is None:
        return ("auto" if tools else "none"), tools
    if choice in ("none", "auto", "required"):
        if choice != "none" and not tools:
            raise InvalidRequest(f'"tool_choice": "{choice}" needs "tools"')
        return choice, tools
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        chosen = [t for t in tools if t["function"]["name"] == name]
        if not chosen:
            raise InvalidRequest(f'"tool_choice" names the function {name!r}, which is not in "tools"')
        return "required", chosen
    raise InvalidRequest('"tool_choice" must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}')


def plan_chat(body: Any, setup: ChatSetup, system_prompt: str = "", allow_empty: bool = False) -> Plan:
    """system_prompt: the server's default system message (POST /props), for messages that have none.
    allow_empty: an empty "messages" renders the template's opening alone (llama-server's Anthropic
    route does; OpenAI's API refuses it)."""
    req: ChatCompletionRequest = validate_model(ChatCompletionRequest, body)
    _check_n(req.n, setup.max_n)
    include_usage = _stream_flags(req)
    if req.top_logprobs is not None and not req.logprobs:
        raise InvalidRequest('"top_logprobs" requires "logprobs" to be true')
    if req.top_logprobs is not None and not 0 <= req.top_logprobs <= MAX_TOP_LOGPROBS:
        raise InvalidRequest(f'"top_logprobs" must be between 0 and {MAX_TOP_LOGPROBS}')
    schema = _json_schema_of(req.response_format)
    user_grammar = "grammar" in body or "json_schema" in body
    if schema is not None and user_grammar:
        raise InvalidRequest('"response_format" cannot be combined with "grammar" or "json_schema"')
    reasoning_format = body.get("reasoning_format", setup.reasoning_format)
    if reasoning_format not in REASONING_FORMATS:
        raise InvalidRequest(f'"reasoning_format" must be one of {", ".join(REASONING_FORMATS)}')
    choice, callable_tools = _tool_choice(req)
    fmt = setup.format
    parallel = req.parallel_tool_calls if req.parallel_tool_calls is not None else True

    media: list | None = [] if setup.multimodal else None
    messages = normalize_messages(req.messages, allow_empty, media)
    if system_prompt and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system_prompt})
    template_tools = None
    if req.tools:
        caps = setup.caps
        messages, template_tools = fmt.prepare_messages(
            messages, req.tools, parallel=parallel, system_role=caps.supports_system_role if caps else True,
            template_shows_tools=caps.supports_tools if caps else None,
        )
    prompt_text = render_prompt(req, messages, template_tools, setup)

    fields = {k: v for k, v in body.items() if k not in _CHAT_ONLY and k != "reasoning_format"}
    limit = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    if limit is not None and "n_predict" not in fields:
        fields["n_predict"] = limit
    logprobs = (req.top_logprobs or 0) if req.logprobs else None
    if logprobs is not None:
        # the engine reports the sampled token's logprob alongside at least one alternative
        fields["n_probs"] = max(1, logprobs)
    if schema is not None:
        fields["json_schema"] = schema
    grammar = None
    plain = setup.skip_chat_parsing  # llama-server's pure content parser: no tool calls, no reasoning
    if choice != "none" and schema is None and not user_grammar and not plain:
        # Calls are constrained to the tools' schemas: from the start for required/named,
        # lazily (from the family's opening marker on) for auto.
        try:
            grammar = fmt.grammar(callable_tools, schema_to_gbnf, required=choice == "required", parallel=parallel, prompt=prompt_text)
        except SchemaError as exc:
            raise InvalidRequest(f"a tool's parameters cannot be used: {exc}") from None
    parse_tools = callable_tools if choice != "none" else None
    stream = req.stream

    def output() -> ParsedOutput:
        return ParsedOutput(OutputParser(fmt, parse_tools, reasoning_format=reasoning_format, stream=stream,
                                         prompt=prompt_text, stream_arguments=grammar is not None), setup.report)

    return Plan(
        native=native.parse_request(fields), n=req.n, stream=req.stream, include_usage=include_usage,
        logprobs=logprobs, model=req.model or setup.model_alias, prompt_text=prompt_text,
        output=PlainOutput if plain else output, tool_grammar=grammar,
        # the think markers are not the server's business then: no budget to close them either
        budget=None if plain else _reasoning_budget(req, setup, prompt_text, user_grammar or schema is not None),
        verbose=setup.verbose if req.verbose is None else req.verbose, media=tuple(media or ()),
    )


def _reasoning_budget(req: ChatCompletionRequest, setup: ChatSetup, prompt: str, constrained: bool) -> ReasoningBudgetText | None:
    """The request's budget (reasoning_budget_tokens, else thinking_budget_tokens, -1 = the server's),
    for a family with think markers. Not under a grammar of the client's: forcing the closing marker
    would fight it (the tool-call grammars allow the think block)."""
    tokens = next((v for v in (req.reasoning_budget_tokens, req.thinking_budget_tokens) if v is not None and v != -1),
                  setup.reasoning_budget)
    fmt = setup.format
    if tokens < 0 or constrained or not (fmt.reasoning_start and fmt.reasoning_close):
        return None
    message = req.reasoning_budget_message if req.reasoning_budget_message is not None else setup.reasoning_budget_message
    return ReasoningBudgetText(tokens, fmt.reasoning_start, fmt.reasoning_close, message, fmt.thinking_open(prompt))


def plan_completions(body: Any, *, max_n: int, model_alias: str, verbose: bool = False) -> Plan:
    """verbose: the server's default of the request field of that name (-v)."""
    req: CompletionsRequest = validate_model(CompletionsRequest, body)
    _check_n(req.n, max_n)
    include_usage = _stream_flags(req)
    if req.prompt is None:
        raise InvalidRequest('"prompt" is required')
    if req.best_of is not None and req.best_of != req.n:
        raise InvalidRequest('"best_of" is not supported (only best_of equal to n)')
    if req.suffix:
        raise InvalidRequest('"suffix" is not supported: this model has no fill-in-the-middle tokens')
    if req.logprobs is not None and not 0 <= req.logprobs <= MAX_COMPLETION_LOGPROBS:
        raise InvalidRequest(f'"logprobs" must be between 0 and {MAX_COMPLETION_LOGPROBS}')
    if req.echo and req.logprobs is not None:
        raise InvalidRequest('"echo" together with "logprobs" is not supported (prompt logprobs are not computed)')
    fields = {k: v for k, v in body.items() if k not in _COMPLETIONS_ONLY}
    if req.logprobs is not None:
        fields["n_probs"] = max(1, req.logprobs)
    return Plan(
        native=native.parse_request(fields), n=req.n, stream=req.stream, include_usage=include_usage,
        logprobs=req.logprobs, model=req.model or model_alias, echo=req.echo,
        verbose=verbose if req.verbose is None else req.verbose,
    )


def build_tasks(
    plan: Plan, prompts: list[list[int]], defaults: SamplingDefaults, tokenize: Tokenize, n_vocab: int,
    cache_reuse: int, spec: SpecParams | None = None,
) -> list[Task]:
    """One task per (prompt, choice); choice i of prompt p answers at index p * n + i."""
    tasks = native.build_tasks(plan.native, [p for p in prompts for _ in range(plan.n)], defaults, tokenize, n_vocab,
                               cache_reuse, spec)
    changes: dict[str, Any] = {}  # what the chat plan adds to the tasks' (shared) sampling params
    if plan.budget is not None:
        b = plan.budget

        def markup(text: str) -> tuple[int, ...]:
            return tuple(tokenize(text, False))

        changes["reasoning"] = BudgetSpec(b.tokens, markup(b.start), markup(b.end), markup(b.message + b.end), b.open_in_prompt)
    g = plan.tool_grammar
    if g is not None:
        changes.update(grammar=g.gbnf, grammar_lazy=g.lazy, grammar_triggers=[t.regex() for t in g.triggers])
    if changes:
        params = dataclasses.replace(tasks[0].params, **changes)
        for t in tasks:
            t.params = params
    if plan.n > 1:
        for t in tasks:
            if t.index % plan.n == 0:  # the choices of one prompt evaluate it once
                group = object()
            t.prompt_group = group
            seed = t.params.seed
            if seed != RANDOM_SEED:
                # a fixed seed stays reproducible, yet the n choices differ
                t.params = dataclasses.replace(t.params, seed=(seed + t.index % plan.n) & 0xFFFFFFFF)
    return tasks



def chat_tasks(body: Any, setup: ChatSetup, tokenizer: Tokenizer, defaults: TaskDefaults,
               allow_empty: bool = False) -> tuple[Plan, list[Task]]:
    """A chat request (an OpenAI-shaped body, or one the other families translate to) as a plan and the
    engine tasks that carry it out. allow_empty: see plan_chat."""
    plan = plan_chat(body, setup, defaults.system_prompt, allow_empty)
    tokenize = tokenizer.tokenize
    if plan.media:
        prompts = [tokenizer.tokenize_media(plan.prompt_text, list(plan.media))]
    else:
        prompts = native.tokenize_prompts(plan.prompt_text, tokenize, tokenizer.n_vocab)
    tasks = build_tasks(plan, prompts, defaults.sampling, tokenize, tokenizer.n_vocab, defaults.cache_reuse, defaults.speculative)
    if setup.special_pieces:
        for t in tasks:
            t.special_pieces = setup.special_pieces
    return plan, tasks


def completions_tasks(body: Any, tokenizer: Tokenizer, defaults: TaskDefaults, *, max_n: int, model_alias: str,
                      verbose: bool = False) -> tuple[Plan, list[Task], list[str]]:
    """A /v1/completions request as a plan, its tasks and the text of each prompt (for "echo" and
    "__verbose"; empty when neither asks for it)."""
    plan = plan_completions(body, max_n=max_n, model_alias=model_alias, verbose=verbose)
    tokenize = tokenizer.tokenize
    prompts = native.tokenize_prompts(plan.native.prompt, tokenize, tokenizer.n_vocab)
    tasks = build_tasks(plan, prompts, defaults.sampling, tokenize, tokenizer.n_vocab, defaults.cache_reuse, defaults.speculative)
    texts = [tokenizer.detokenize(p, special=True) for p in prompts] if plan.echo or plan.verbose else []
    return plan, tasks, texts
