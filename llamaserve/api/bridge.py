"""Where HTTP handlers meet the scheduler thread.

Handlers submit Tasks and read Results from an asyncio.Queue. The scheduler
hands over each step's Results in one call; they cross to the event loop with a
single call_soon_threadsafe per step, not one per token.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from starlette.requests import Request

from llamaserve.api import limits
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

    def check(self, tasks: list[Task]) -> None:
        """Raise now what the engine would answer these tasks with (e.g. 501 for generation on an
        embedding-only server). Streaming handlers call it before they start their response;
        otherwise the refusal arrives as an error Result."""
        for t in tasks:
            self.scheduler.validate(t)

    def run(self, request: Request, tasks: list[Task]) -> AsyncIterator[Result]:
        """Check the request limits now (raising a 4xx/503 ServerError), then return an iterator that
        submits the tasks and yields their Results as they come, cancelling them if the client goes away.

        Call it before starting a streamed response, so a refusal is a proper HTTP status rather
        than an error event in a 200 stream."""
        config = self.scheduler.config
        limits.check_tasks(config, tasks)
        limits.check_queue(config, self.scheduler, len(tasks))
        return self._run(request, tasks)

    async def _run(self, request: Request, tasks: list[Task]) -> AsyncIterator[Result]:
        channel = _Channel()
        for t in tasks:
            t.sink = channel.put
        remaining = len(tasks)
        self.scheduler.submit(tasks)
        watcher = asyncio.ensure_future(_wait_disconnect(request, channel))
        try:
            while remaining:
                for result in await channel.take():
                    if result.done:
                        remaining -= 1
                    yield result
        finally:
            watcher.cancel()
            if remaining:
                for t in tasks:
                    t.cancel()
                self.scheduler.wake()


    async def collect(self, request: Request, tasks: list[Task]) -> list[Result]:
        """Run tasks to the end; their final Results in index order. Raises the first error."""
        finals: list[Result] = []
        async for r in self.run(request, tasks):
            if r.done:
                raise_if_error(r)
                finals.append(r)
        return sorted(finals, key=lambda r: r.task.index)


class _Channel:
    """Results of one request, handed from the loop's dispatch to the handler.

    Cheaper per token than an asyncio.Queue plus asyncio.wait on two futures:
    one future per wait, created only when nothing is pending.
    """

    __slots__ = ("items", "waiter", "gone")

    def __init__(self) -> None:
        self.items: list[Result] = []
        self.waiter: asyncio.Future | None = None
        self.gone = False

    def put(self, result: Result) -> None:
        self.items.append(result)
        self._wake()

    def disconnect(self) -> None:
        self.gone = True
        self._wake()

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def take(self) -> list[Result]:
        while not self.items:
            if self.gone:
                raise ClientGone()
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
            self.waiter = None
        items, self.items = self.items, []
        return items


class ClientGone(Exception):
    pass


def _dispatch(results: list[Result]) -> None:
    for r in results:
        sink = r.task.sink
        if sink is not None:
            sink(r)


async def _wait_disconnect(request: Request, channel: _Channel) -> None:
    # After the body is read, the next ASGI message is http.disconnect when the client leaves.
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            channel.disconnect()
            return


def raise_if_error(result: Result) -> None:
    if result.error is not None:
        err = result.error
        raise err if isinstance(err, ServerError) else ServerError(str(err))
