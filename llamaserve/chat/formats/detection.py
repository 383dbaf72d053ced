"""Which family a chat template belongs to: `detect_format(source)`, by markers in the template's source
(tested in a fixed order, since one template can hold markers of several families), and `FORMATS` by name.
"""

from __future__ import annotations

import re

from llamaserve.chat.formats.base import ChatFormat, ContentOnly
from llamaserve.chat.formats.deepseek import DS_CALLS_BEGIN, DS_SEP, DeepSeekR1, DeepSeekV31
from llamaserve.chat.formats.functionary import FunctionaryV31, FunctionaryV32
from llamaserve.chat.formats.generic import Generic
from llamaserve.chat.formats.gpt_oss import GptOss
from llamaserve.chat.formats.hermes import Hermes
from llamaserve.chat.formats.json_lists import Apriel, CommandR7B, FireFunctionV2, Granite, NemotronV2
from llamaserve.chat.formats.llama3 import Llama3
from llamaserve.chat.formats.mistral import MistralNemo, MistralSmall
from llamaserve.chat.formats.xml_calls import GlmCalls, MiniMaxM2, Qwen3Coder, SeedOss

FORMATS: dict[str, type[ChatFormat]] = {
    cls.name: cls for cls in (
        ContentOnly, Hermes, Qwen3Coder, SeedOss, MiniMaxM2, GlmCalls, Llama3, MistralNemo, MistralSmall, DeepSeekR1,
        DeepSeekV31, FunctionaryV31, FunctionaryV32, CommandR7B, Granite, NemotronV2, Apriel, FireFunctionV2, GptOss,
        Generic,
    )
}


def detect_format(source: str) -> ChatFormat:
    """The family of a chat template, from markers in its source; templates that are none of them get Generic."""
    s = source
    if "<|channel|>" in s:
        return GptOss(s)
    if ">>>all" in s:
        return FunctionaryV32(s)
    if "<|START_ACTION|>" in s and "<|START_TEXT|>" not in s:
        return CommandR7B(s)
    if "[TOOL_CALLS]" in s:
        return MistralSmall(s) if "[ARGS]" in s else MistralNemo(s)
    if DS_CALLS_BEGIN in s:
        return DeepSeekV31(s) if re.search(r"name'\]\s*\+\s*'" + re.escape(DS_SEP), s) else DeepSeekR1(s)
    if "<tool_call>" in s and "<function=" in s and "<parameter=" in s:
        return Qwen3Coder(s)
    if "<seed:tool_call>" in s:
        return SeedOss(s)
    if "<minimax:tool_call>" in s and "<invoke name=" in s:
        return MiniMaxM2(s)
    if "<tool_call>" in s and "<arg_key>" in s:
        return GlmCalls(s)
    if "<TOOLCALL>" in s:
        return NemotronV2(s)
    if "<tool_calls>[" in s:
        return Apriel(s)
    if "<|tool_call|>" in s:
        return Granite(s)
    if "functools[" in s:
        return FireFunctionV2(s)
    if "<function=" in s and "<|python_tag|>" in s:
        return FunctionaryV31(s)
    if "<tool_call>" in s and not any(x in s for x in ("<arg_key>", "<invoke", "<function=", "<tool_calls>")):
        return Hermes(s)
    if "<|start_header_id|>" in s and ("<|python_tag|>" in s or '"parameters": dictionary' in s):
        return Llama3(s)
    return Generic(s)
