"""Where HTTP handlers meet the scheduler thread.

Handlers submit Tasks and read Results from an asyncio.Queue. The scheduler
hands over each step's Results in one call; they cross to the event loop with a
single call_soon_threadsafe per step, not one per token.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from starlette.requests import Request

from llamaserve.engine import Result, Scheduler, Task
from llamaserve.errors import ServerError, Unavailable


class EngineBridge:
    def __init__(self, scheduler_factory):
        self.loop: asyncio.AbstractEventLoop | None = None
        self.scheduler: Scheduler = scheduler_factory(self._deliver)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    @property
    def model(self):
        if not self.scheduler.ready.is_set() or self.scheduler.model is None:
            raise Unavailable("Loading model")
        return self.scheduler.model

    # scheduler thread -> event loop
    def _deliver(self, results: list[Result]) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(_dispatch, results)

    async def run(self, request: Request, tasks: list[Task]) -> AsyncIterator[Result]:
        """Submit tasks and yield their Results as they come; cancels them if the client goes away."""
        queue: asyncio.Queue[Result] = asyncio.Queue()
        for t in tasks:
            t.sink = queue.put_nowait
        remaining = len(tasks)
        self.scheduler.submit(tasks)
        watcher = asyncio.ensure_future(_wait_disconnect(request))
        try:
            while remaining:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, watcher}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    raise ClientGone()
                result = getter.result()
                if result.done:
                    remaining -= 1
                yield result
        finally:
            watcher.cancel()
            if remaining:
                for t in tasks:
                    t.cancel()
                self.scheduler.wake()


class ClientGone(Exception):
    pass


def _dispatch(results: list[Result]) -> None:
    for r in results:
        sink = r.task.sink
        if sink is not None:
            sink(r)


async def _wait_disconnect(request: Request) -> None:
    # After the body is read, the next ASGI message is http.disconnect when the client leaves.
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def raise_if_error(result: Result) -> None:
    if result.error is not None:
        err = result.error
        raise err if isinstance(err, ServerError) else ServerError(str(err))
