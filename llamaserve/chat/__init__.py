"""Chat: model chat templates (jinja2 sandbox, Hugging Face semantics); later tool-call and reasoning parsers.

Pure code: stdlib and jinja2 only, no I/O.
"""

from llamaserve.chat.caps import TemplateCaps
from llamaserve.chat.template import ChatTemplate, TemplateError

__all__ = ["ChatTemplate", "TemplateCaps", "TemplateError"]
