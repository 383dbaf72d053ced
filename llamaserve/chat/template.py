"""Render a model's jinja chat template the way Hugging Face `apply_chat_template` does.

Same sandbox and options (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loop
controls, the `{% generation %}` tag), same globals and filters (`raise_exception`,
`strftime_now`, `tojson` with its options, restricted `dict` and `namespace`), same template
variables (`messages`, `tools`, `documents`, `add_generation_prompt`, special tokens, extra
kwargs), so a prompt is byte-identical to what transformers would build for the same messages.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.exceptions
import jinja2.ext
import jinja2.meta
import jinja2.nodes
import jinja2.utils
from jinja2.sandbox import ImmutableSandboxedEnvironment

from llamaserve.chat.caps import TemplateCaps, probe_caps
from llamaserve.chat.errors import TemplateError
from llamaserve.chat.messages import adapt_messages, alias_reasoning_fields, content_text, plain_data

# Template variables the renderer sets itself; extra kwargs may not replace them.
RESERVED_VARIABLES = frozenset({"messages", "tools", "documents", "add_generation_prompt"})
# Variables llama.cpp sets for templates that read them (firefunction-v2 cannot render without);
# set only when a template reads them, so other templates render exactly as under transformers.
LLAMA_CPP_VARIABLES = frozenset({"datetime", "date_string", "functions"})


def reasoning_aliases(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The other names templates read llama.cpp's two reasoning switches under, as llama.cpp sets them:
    a boolean `preserve_reasoning` (--reasoning-preserve) as preserve_thinking and the inverse
    clear_thinking / truncate_history_thinking / drop_thinking; a `reasoning_effort` level as
    reasoning_strength too. Kwargs given under these names themselves still win (set after)."""
    out: dict[str, Any] = {}
    keep = kwargs.get("preserve_reasoning")
    if isinstance(keep, bool):
        out.update(preserve_thinking=keep, clear_thinking=not keep, truncate_history_thinking=not keep,
                   drop_thinking=not keep)
    effort = kwargs.get("reasoning_effort")
    if isinstance(effort, str) and effort:
        out["reasoning_strength"] = effort
    return out


class _RaisedByTemplate(jinja2.exceptions.TemplateError):
    """The template called raise_exception(message): its message is meant for the user as is."""


def _raise_exception(message: Any) -> None:
    raise _RaisedByTemplate(message)


def _tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
            sort_keys: bool = False) -> str:
    # transformers' override of jinja's filter: no HTML escaping, and json.dumps' options exposed
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


class _TemplateDict:
    """`dict(...)` and `dict.fromkeys(...)` without handing the dict type (and its attributes) to templates."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict:
        return dict.fromkeys(*args, **kwargs)


class _TemplateNamespace(jinja2.utils.Namespace):
    """jinja's namespace() refusing underscore names, which could reach CPython internals."""

    def __init__(*args: Any, **kwargs: Any) -> None:  # jinja's signature trick: `namespace(self=...)` works
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            _TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        _TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check_name(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(
                f"chat templates cannot store underscore-prefixed attributes on a namespace, got {name!r}"
            )


class _GenerationTag(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}` marks assistant text for training masks; it renders its body."""

    tags = {"generation"}

    def parse(self, parser: Any) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller: Any) -> str:
        return caller()


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationTag, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = _TemplateDict()
    env.globals["namespace"] = _TemplateNamespace
    return env


@lru_cache(maxsize=32)
def _compile(source: str) -> jinja2.Template:
    """One compiled template per source text; jinja templates render concurrently without locks."""
    try:
        return _environment().from_string(source)
    except jinja2.exceptions.TemplateSyntaxError as e:
        raise TemplateError(f"chat template syntax error at line {e.lineno}: {e.message}") from None


@lru_cache(maxsize=32)
def _undeclared_variables(source: str) -> frozenset[str]:
    return frozenset(jinja2.meta.find_undeclared_variables(_environment().parse(source)))


def _describe(error: Exception) -> str:
    if isinstance(error, _RaisedByTemplate):
        return str(error.message)
    if isinstance(error, jinja2.exceptions.UndefinedError):
        return f"chat template error: {error.message}"
    if isinstance(error, jinja2.exceptions.TemplateError):
        return f"chat template error: {error.message or type(error).__name__}"
    return f"chat template error: {type(error).__name__}: {error}"


class ChatTemplate:
    """One chat template, compiled once and rendered many times (thread-safe, no mutable state).

    `render` adapts the messages to the template first (see `template_inputs`), so any
    OpenAI-style conversation renders; every failure is a `TemplateError` with a clear message.
    """

    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = ""):
        if not isinstance(source, str) or not source.strip():
            raise TemplateError("chat template is empty")
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        self._template = _compile(source)
        self._llama_cpp_variables = _undeclared_variables(source) & LLAMA_CPP_VARIABLES
        # gpt-oss templates speak of the "developer" role themselves (they have <|channel|> markup)
        self._developer_is_system = "<|channel|>" not in source
        self.caps: TemplateCaps = probe_caps(self._render_raw)

    def _variables(self, tools: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        variables: dict[str, Any] = {"bos_token": self.bos_token, "eos_token": self.eos_token}
        # today's date, as llama.cpp gives every template (HF gives none: Llama 3's then says "26 Jul 2024")
        if "datetime" in self._llama_cpp_variables:
            variables["datetime"] = datetime.now().strftime("%b %d %Y")
        if "date_string" in self._llama_cpp_variables:
            variables["date_string"] = datetime.now().strftime("%d %b %Y")
        if "functions" in self._llama_cpp_variables:
            variables["functions"] = json.dumps(tools, ensure_ascii=False, indent=2) if tools else ""
        variables.update(reasoning_aliases(kwargs))
        variables.update(kwargs)
        return variables

    def _render_raw(self, messages: list[dict], *, add_generation_prompt: bool, tools: Any = None,
                    documents: Any = None, **kwargs: Any) -> str:
        """The template applied to messages as given, like transformers' render_jinja_template; raises
        whatever the template raises."""
        return self._template.render(
            messages=alias_reasoning_fields(plain_data(messages)),
            tools=plain_data(tools),
            documents=plain_data(documents),
            add_generation_prompt=add_generation_prompt,
            **plain_data(self._variables(tools, kwargs)),
        )

    def prepare_messages(self, messages: Any) -> list[dict]:
        """The messages exactly as `render` hands them to the template: plain copies with null keys
        dropped, `developer` as `system`, a system message the template cannot take merged into the
        next message, content as string or typed parts as the template wants, tool-call arguments as
        object or JSON string as the template reads them."""
        return adapt_messages(messages, self.caps, developer_is_system=self._developer_is_system)

    def template_inputs(self, messages: Any, /, *, tools: list[dict] | None = None,
                        documents: list[dict] | None = None, **kwargs: Any) -> dict[str, Any]:
        """Every variable `render` gives the template except add_generation_prompt: `messages` (see
        prepare_messages), `tools` ([] for templates that require the list), `documents`,
        bos_token/eos_token, the llama.cpp variables a template reads but HF does not set
        (`datetime`, `functions`: firefunction; `date_string`: Llama 3), then kwargs. transformers' apply_chat_template given
        these renders the same string."""
        reserved = RESERVED_VARIABLES.intersection(kwargs)
        if reserved:
            raise TemplateError(f"template variable {sorted(reserved)[0]!r} cannot be set through template kwargs")
        if tools is not None and not (isinstance(tools, (list, tuple)) and all(isinstance(t, dict) for t in tools)):
            raise TemplateError("tools must be an array of objects")
        if documents is not None and not (isinstance(documents, (list, tuple))
                                          and all(isinstance(d, dict) for d in documents)):
            raise TemplateError("documents must be an array of objects")
        if tools is None and self.caps.requires_tools:
            tools = []
        return {"messages": self.prepare_messages(messages), "tools": plain_data(tools),
                "documents": plain_data(documents), **plain_data(self._variables(tools, kwargs))}

    def render(self, messages: Any, /, *, add_generation_prompt: bool = True, continue_final_message: bool = False,
               tools: list[dict] | None = None, documents: list[dict] | None = None, **kwargs: Any) -> str:
        """The prompt text for `messages` (OpenAI-style dicts).

        add_generation_prompt: end with the header that opens the assistant's reply.
        continue_final_message: the last message is an assistant reply to continue (prefill): the
            prompt is the conversation before it, the generation prompt, then that reply's text
            (llama-server's way; it implies add_generation_prompt).
        tools, documents: passed to the template as HF does (None when absent).
        kwargs: extra template variables (chat_template_kwargs, e.g. enable_thinking); they may
            override bos_token/eos_token but not messages/tools/documents/add_generation_prompt.
        """
        inputs = self.template_inputs(messages, tools=tools, documents=documents, **kwargs)
        msgs = inputs.pop("messages")
        prefill = None
        if continue_final_message:
            last = msgs[-1] if msgs else {"role": ""}
            if last["role"] != "assistant":
                raise TemplateError("continue_final_message needs the last message to be from the assistant")
            if last.get("tool_calls"):
                raise TemplateError("cannot continue an assistant message that contains tool calls")
            if len(msgs) < 2:
                raise TemplateError("continue_final_message needs a message before the assistant's")
            prefill = content_text(last.get("content"), where="the final assistant message")
            msgs = msgs[:-1]
            add_generation_prompt = True
        try:
            text = self._render_raw(msgs, add_generation_prompt=add_generation_prompt, **inputs)
        except Exception as e:  # the template is foreign code: any failure is the template's or the input's
            raise TemplateError(_describe(e)) from None
        return text if prefill is None else text + prefill

    def generation_prompt(self, messages: Any = None, /, *, tools: list[dict] | None = None,
                          documents: list[dict] | None = None, **kwargs: Any) -> str:
        """What the template appends for add_generation_prompt=True (e.g. "<|im_start|>assistant\\n",
        or with an opened "<think>"): the rendering with it past the common prefix of the rendering
        without it. Reasoning and tool-call parsers start from this text."""
        if messages is None:
            messages = [{"role": "user", "content": "Hello"}]
        without = self.render(messages, add_generation_prompt=False, tools=tools, documents=documents, **kwargs)
        with_prompt = self.render(messages, add_generation_prompt=True, tools=tools, documents=documents, **kwargs)
        n = 0
        for a, b in zip(without, with_prompt):
            if a != b:
                break
            n += 1
        return with_prompt[n:]
