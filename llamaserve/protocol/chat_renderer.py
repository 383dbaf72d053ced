"""Which chat template turns messages into a prompt: jinja (the model's, or --chat-template) or libllama's built-ins.

Built once per server, when the model is loaded (api/bridge.py); its `render` is then what the
protocol's chat planning receives as its `Render` function. libllama's built-in formats come in as
`BuiltinTemplates` (the engine's), so this module stays free of the engine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from llamaserve.chat import ChatTemplate, TemplateError
from llamaserve.chat.formats import detect_format
from llamaserve.errors import InvalidRequest, ServerError

log = logging.getLogger("llamaserve.chat")

# Used when a model ships no template, and for --chat-template chatml under jinja.
CHATML_SOURCE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


@dataclass(frozen=True)
class BuiltinTemplates:
    """libllama's built-in chat formats: their names, and (template, [(role, content)], add_assistant) -> text,
    raising ValueError for a template libllama does not know."""

    names: tuple[str, ...]
    apply: Callable[[str, list[tuple[str, str]], bool], str]


class ChatRenderer:
    """The server's prompt renderer. model: the loaded model (its info, tokenize and piece)."""

    def __init__(self, model, builtins: BuiltinTemplates, chat_template: str = "", use_jinja: bool = True):
        info = model.info
        self.apply_builtin = builtins.apply
        self.bos_token = _token_text(model, info.bos)
        self.eos_token = _token_text(model, info.eos)
        self.strip_bos = info.add_bos  # libllama adds BOS itself when tokenizing
        source = chat_template or info.chat_template
        self.builtin: str | None = None
        self.template: ChatTemplate | None = None
        if source in builtins.names and source != "chatml":
            self.builtin = source
        elif not use_jinja:
            self.builtin = source or "chatml"
        else:
            try:
                self.template = ChatTemplate(source or CHATML_SOURCE, bos_token=self.bos_token, eos_token=self.eos_token)
            except TemplateError as exc:
                raise ServerError(f"the chat template cannot be used: {exc}") from None
        self.source = source or ("chatml" if self.builtin else CHATML_SOURCE)
        if self.builtin is not None:
            try:
                self.apply_builtin(self.builtin, [("user", "test")], True)
            except ValueError as exc:
                raise ServerError(f"chat template: {exc}") from None
        self.format = detect_format(self.template.source if self.template is not None else "")
        # Markers the output parser must see as text, though they are special tokens (not rendered by default).
        self.special_pieces: dict[int, bytes] = {}
        for text in self.format.preserved_tokens:
            ids = model.tokenize(text, add_special=False, parse_special=True)
            if len(ids) == 1:
                self.special_pieces[ids[0]] = model.piece(ids[0], special=True)
        log.info("chat template: %s; tool-call format: %s", f"built-in '{self.builtin}'" if self.builtin else "jinja",
                 self.format.name)

    @property
    def caps(self):
        return self.template.caps if self.template is not None else None

    def render(self, messages: list[dict[str, Any]], add_generation_prompt: bool, tools: list[dict] | None,
               kwargs: dict[str, Any], continue_final: bool = False) -> str:
        if self.template is None:
            if tools:
                raise InvalidRequest("tools param requires --jinja flag")
            pairs = [(m["role"], m.get("content") or "") for m in messages]
            try:
                text = self.apply_builtin(self.builtin, pairs, add_generation_prompt)
            except ValueError as exc:
                raise InvalidRequest(str(exc)) from None
            if continue_final:  # cut the closing markers after the final message's text
                content = pairs[-1][1]
                cut = text.rfind(content) if content else -1
                text = text[: cut + len(content)] if cut >= 0 else text
            return text
        try:
            text = self.template.render(messages, add_generation_prompt=add_generation_prompt,
                                        continue_final_message=continue_final, tools=tools, **kwargs)
        except TemplateError as exc:
            raise InvalidRequest(str(exc)) from None
        if self.strip_bos and self.bos_token and text.startswith(self.bos_token):
            text = text[len(self.bos_token):]  # tokenizing adds it again
        return text


def _token_text(model, token: int) -> str:
    return model.piece(token, special=True).decode("utf-8", "replace") if token >= 0 else ""
