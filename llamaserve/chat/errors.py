"""The one error type of chat/: a template, or the input given to it, cannot be rendered."""

from __future__ import annotations


class TemplateError(ValueError):
    """A chat template failed: syntax error, `raise_exception`, undefined value, unusable messages.

    A ValueError so that callers map it to a 400: it is always about the template or the request.
    """
