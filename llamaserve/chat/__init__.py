"""Chat: model chat templates (jinja2 sandbox, Hugging Face semantics); model families' tool-call and
reasoning formats (formats/) and the streaming parser of their output (output.py).

Pure code: stdlib and jinja2 only, no I/O.
"""

from llamaserve.chat.caps import TemplateCaps
from llamaserve.chat.template import ChatTemplate, TemplateError

__all__ = ["ChatTemplate", "TemplateCaps", "TemplateError"]
