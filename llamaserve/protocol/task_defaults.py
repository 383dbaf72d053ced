"""`TaskDefaults`: what the server, not the request, puts into every engine task it is translated to."""

from __future__ import annotations

from dataclasses import dataclass

from llamaserve.config import SamplingDefaults
from llamaserve.engine.types import SpecParams


@dataclass(frozen=True)
class TaskDefaults:
    """The server's side of every task: sampling defaults (-r / POST /props change them between
    requests), --cache-reuse, the default system message (POST /props) of chat requests, and the
    speculative decoding settings (requests may override them)."""

    sampling: SamplingDefaults
    cache_reuse: int = 0
    system_prompt: str = ""
    speculative: SpecParams | None = None  # None: the engine's
