"""Model families' tool-call and reasoning formats, detected from the chat template's source.

A `ChatFormat` knows one family's output: the markup of its tool calls and
thoughts (parsed by `OutputParser`, chat/output.py, with the `body` generator
of the format), the grammar that makes the model write valid calls, the
lazy-grammar triggers, the special tokens that must be rendered as text for
the parser to see them, and extra stop strings. `detect_format(source)` picks
the family.

One module per family group: base.py (ChatFormat, ContentOnly, shared helpers),
detection.py (detect_format, FORMATS), hermes.py, xml_calls.py, llama3.py,
mistral.py, deepseek.py, functionary.py, json_lists.py, gpt_oss.py, generic.py.
"""

from llamaserve.chat.formats.base import ChatFormat, ContentOnly, Tool
from llamaserve.chat.formats.deepseek import DeepSeekR1, DeepSeekV31
from llamaserve.chat.formats.detection import FORMATS, detect_format
from llamaserve.chat.formats.functionary import FunctionaryV31, FunctionaryV32
from llamaserve.chat.formats.generic import Generic
from llamaserve.chat.formats.gpt_oss import GptOss
from llamaserve.chat.formats.hermes import Hermes
from llamaserve.chat.formats.json_lists import Apriel, CommandR7B, FireFunctionV2, Granite, JsonListCalls, NemotronV2
from llamaserve.chat.formats.llama3 import Llama3
from llamaserve.chat.formats.mistral import MistralNemo, MistralSmall
from llamaserve.chat.formats.xml_calls import GlmCalls, MiniMaxM2, Qwen3Coder, SeedOss, XmlCalls

__all__ = [
    "FORMATS", "detect_format", "ChatFormat", "ContentOnly", "Tool",
    "Hermes", "XmlCalls", "Qwen3Coder", "SeedOss", "MiniMaxM2", "GlmCalls", "Llama3", "MistralNemo", "MistralSmall",
    "DeepSeekR1", "DeepSeekV31", "FunctionaryV31", "FunctionaryV32", "CommandR7B", "JsonListCalls", "Granite",
    "NemotronV2", "Apriel", "FireFunctionV2", "GptOss", "Generic",
]
