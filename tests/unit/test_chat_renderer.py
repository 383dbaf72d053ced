"""protocol.chat_renderer.ChatRenderer with a stand-in model and built-in templates: which template renders
the prompt, BOS handling, the special pieces, and the errors (no model)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from llamaserve.errors import InvalidRequest, ServerError
from llamaserve.protocol.chat_renderer import CHATML_SOURCE, BuiltinTemplates, ChatRenderer

SPECIAL = {"<s>": 1, "</s>": 2, "<tool_call>": 7, "</tool_call>": 8}


@dataclass
class Info:
    chat_template: str = ""
    bos: int = 1
    eos: int = 2
    add_bos: bool = True


class FakeModel:
    def __init__(self, chat_template: str = ""):
        self.info = Info(chat_template)

    def piece(self, token: int, special: bool = False) -> bytes:
        return next(k for k, v in SPECIAL.items() if v == token).encode()

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = True) -> list[int]:
        return [SPECIAL[text]] if text in SPECIAL else [ord(c) for c in text]


def apply(template: str, pairs: list[tuple[str, str]], add_assistant: bool) -> str:
    if template != "zephyr":
        raise ValueError("unknown template")
    return "".join(f"<|{r}|>\n{c}</s>\n" for r, c in pairs) + ("<|assistant|>\n" if add_assistant else "")


BUILTINS = BuiltinTemplates(("chatml", "zephyr"), apply)
USER = [{"role": "user", "content": "hi"}]


def test_jinja_template_of_the_model_with_bos_stripped():
    r = ChatRenderer(FakeModel("{{ bos_token }}{% for m in messages %}[{{ m['content'] }}]{% endfor %}"), BUILTINS)
    assert (r.builtin, r.bos_token, r.eos_token) == (None, "<s>", "</s>")
    assert r.render(USER, True, None, {}) == "[hi]"  # tokenizing adds BOS again


def test_no_template_is_chatml():
    r = ChatRenderer(FakeModel(""), BUILTINS)
    assert r.source == CHATML_SOURCE
    assert r.render(USER, True, None, {}) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("template, use_jinja", [("zephyr", True), ("zephyr", False)])
def test_builtin_templates(template, use_jinja):
    r = ChatRenderer(FakeModel(), BUILTINS, chat_template=template, use_jinja=use_jinja)
    assert r.builtin == "zephyr" and r.caps is None
    assert r.render(USER, True, None, {}) == "<|user|>\nhi</s>\n<|assistant|>\n"
    # a continued final message stops after its text
    assert r.render([*USER, {"role": "assistant", "content": "So"}], False, None, {}, True).endswith("<|assistant|>\nSo")
    with pytest.raises(InvalidRequest, match="tools param requires --jinja flag"):
        r.render(USER, True, [{"type": "function"}], {})


def test_special_pieces_of_the_tool_call_markers():
    r = ChatRenderer(FakeModel("{{ '<tool_call>' }}{% for m in messages %}{{ m['content'] }}{% endfor %}"), BUILTINS)
    assert r.format.name == "hermes"
    assert r.special_pieces == {7: b"<tool_call>", 8: b"</tool_call>"}


@pytest.mark.parametrize("template, use_jinja, fragment", [
    ("{% for %}", True, "the chat template cannot be used"),
    ("nonsense", False, "chat template: unknown template"),
])
def test_unusable_templates(template, use_jinja, fragment):
    with pytest.raises(ServerError) as info:
        ChatRenderer(FakeModel(template), BUILTINS, use_jinja=use_jinja)
    assert fragment in info.value.message and info.value.status == 500
