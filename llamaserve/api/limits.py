"""Request limits, each answered with a clear 4xx (503 for a full queue) before any work is done.

The body limit is an ASGI middleware; the others are checks the engine bridge runs on
every request's Tasks (so each API family gets them), plus `check_n` / `check_n_probs`
for API modules that want a message naming their own field.
"""

from __future__ import annotations

from typing import Sequence

from llamaserve.api import errors
from llamaserve.config import Config
from llamaserve.engine import Occupancy, Task
from llamaserve.errors import InvalidRequest, PayloadTooLarge, Unavailable


def _too_large(limit: int, size: int | None = None) -> PayloadTooLarge:
    got = f" ({size} bytes)" if size is not None else ""
    return PayloadTooLarge(f"request body too large{got}: the limit is {limit} bytes (--max-body-size)")


def check_n(config: Config, n: int, field: str = "n") -> None:
    """Choices per prompt (OpenAI `n`): 1 to the number of slots, as llama-server (or --max-n)."""
    limit = config.n_choices_limit
    if not 1 <= n <= limit:
        raise InvalidRequest(f'"{field}" must be between 1 and {limit}, got {n}')


def check_n_probs(config: Config, n: int, field: str = "n_probs") -> None:
    if n < 0:
        raise InvalidRequest(f'"{field}" must be >= 0, got {n}')
    if n > config.max_n_probs:
        raise InvalidRequest(f'"{field}" is {n}: the limit is {config.max_n_probs} (--max-n-probs)')


def check_tasks(config: Config, tasks: Sequence[Task]) -> None:
    """What one request may ask of the engine: how many tasks, how many probabilities per token."""
    if len(tasks) > config.max_prompts:
        raise InvalidRequest(
            f"too many prompts in one request: {len(tasks)} (prompts x n); the limit is {config.max_prompts} (--max-prompts)"
        )
    for t in tasks:
        check_n_probs(config, t.params.n_probs)


def check_queue(config: Config, occupancy: Occupancy, n_new: int) -> None:
    """--max-queue: refuse work that would leave more than that many tasks waiting for a slot.

    Takes the scheduler's counters as a soft snapshot (Scheduler.occupancy, no lock): the limit is
    a soft one, a few tasks racing past it at once is fine."""
    if config.max_queue <= 0:
        return
    waiting = occupancy.queued + n_new - occupancy.free
    if waiting > config.max_queue:
        raise Unavailable(
            f"server is busy: {occupancy.queued} tasks already wait for a slot (--max-queue {config.max_queue})"
        )


class BodyLimit:
    """Pure ASGI middleware: bodies over --max-body-size get 413 before they are read into memory."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit
        for key, value in scope.get("headers") or ():
            if key == b"content-length":
                try:
                    size = int(value)
                except ValueError:
                    size = None
                if size is not None and size > limit:
                    return await errors.error_response(_too_large(limit, size), scope["path"])(scope, receive, send)
                break
        seen = 0

        async def limited_receive():
            # A chunked body has no Content-Length: count as it arrives.
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _too_large(limit)
            return message

        await self.app(scope, limited_receive, send)
