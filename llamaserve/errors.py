"""The one error hierarchy; api/errors.py maps it to llama-server's envelope."""

from __future__ import annotations


class ServerError(Exception):
    """Base: an error with an HTTP status and a llama-server error type."""

    status = 500
    type = "server_error"

    def __init__(self, message: str, **extra):
        super().__init__(message)
        self.message = message
        self.extra = extra  # additional envelope fields (e.g. n_prompt_tokens)


class InvalidRequest(ServerError):
    status = 400
    type = "invalid_request_error"


class ExceedContextSize(ServerError):
    status = 400
    type = "exceed_context_size_error"

    def __init__(self, n_prompt_tokens: int, n_ctx: int):
        super().__init__(
            f"request ({n_prompt_tokens} tokens) exceeds the available context size ({n_ctx} tokens), "
            "try increasing it",
            n_prompt_tokens=n_prompt_tokens,
            n_ctx=n_ctx,
        )


class MediaUnsupported(ServerError):
    """Image (or other media) input on a server without a multimodal projector. llama-server answers it
    with a 500 in every API family, and its clients' tests check for that, so this keeps its status."""

    def __init__(self, where: str, kind: str = "image"):
        super().__init__(f"{where}: {kind} input is not supported: this server runs a text-only model "
                         "(hint: a multimodal model needs its projector, --mmproj)")


class PayloadTooLarge(InvalidRequest):
    status = 413


class AuthenticationError(ServerError):
    status = 401
    type = "authentication_error"


class PermissionDenied(ServerError):
    status = 403
    type = "permission_error"


class NotFound(ServerError):
    status = 404
    type = "not_found_error"


class NotSupported(ServerError):
    status = 501
    type = "not_supported_error"


class Unavailable(ServerError):
    status = 503
    type = "unavailable_error"


class FeatureDisabled(ServerError):
    """A route whose feature the command line did not turn on (llama-server's /tools without --tools)."""

    status = 403
    type = "feature_disabled"
