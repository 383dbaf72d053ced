"""libllama's built-in chat formats (llama_chat_apply_template), used without --jinja.

libllama recognises a template either by name ("chatml", "llama3", ...) or by
sniffing the markers of a template's source text.
"""

from __future__ import annotations

import ctypes
import functools

import llama_cpp.llama_cpp as ll


@functools.cache
def builtin_template_names() -> tuple[str, ...]:
    n = ll.llama_chat_builtin_templates(None, 0)
    names = (ctypes.c_char_p * max(n, 1))()
    ll.llama_chat_builtin_templates(names, n)
    return tuple(names[i].decode() for i in range(n))


def apply_builtin_template(template: str, messages: list[tuple[str, str]], add_assistant: bool) -> str:
    """Format (role, content) pairs; ValueError when libllama does not know the template."""
    encoded = [(r.encode(), c.encode()) for r, c in messages]
    chat = (ll.llama_chat_message * max(len(encoded), 1))(*[ll.llama_chat_message(r, c) for r, c in encoded])
    size = 2 * sum(len(r) + len(c) for r, c in encoded) + 256
    for _ in range(2):
        buf = ctypes.create_string_buffer(size)
        n = ll.llama_chat_apply_template(template.encode(), chat, len(encoded), add_assistant, buf, size)
        if n < 0:
            raise ValueError("this chat template is not supported by libllama's built-in formats; use --jinja")
        if n <= size:
            return buf.raw[:n].decode("utf-8", "replace")
        size = n
    raise ValueError("chat template output kept growing")
