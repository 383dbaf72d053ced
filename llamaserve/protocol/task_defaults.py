"""`TaskDefaults`: what the server, not the request, puts into every engine task it is translated to."""

from __future__ import annotations

from dataclasses import dataclass

from llamaserve.config import SamplingDefaults


@dataclass(frozen=True)
class TaskDefaults:
    """The server's side of every task: sampling defaults (-r / POST /props change them between
    requests), --cache-reuse, and the default system message (POST /props) of chat requests."""

    sampling: SamplingDefaults
    cache_reuse: int = 0
    system_prompt: str = ""
