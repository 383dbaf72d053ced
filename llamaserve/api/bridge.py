"""Where HTTP handlers meet the scheduler thread.

Handlers submit Tasks and read Results from an asyncio.Queue. The scheduler
hands over each step's Results in one call; they cross to the event loop with a
single call_soon_threadsafe per step, not one per token.

When the model is loaded (on the scheduler thread, before it reports ready) the bridge builds what
every chat route shares: the prompt renderer and the ChatSetup the protocol plans chat requests with.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator, Callable

from starlette.requests import Request

from llamaserve.api import limits
from llamaserve.engine import Result, Scheduler, SpecParams, Task, apply_builtin_template, builtin_template_names, grammar_compiles
from llamaserve.errors import ServerError, Unavailable
from llamaserve.protocol import constraints, openai
from llamaserve.protocol.chat_renderer import BuiltinTemplates, ChatRenderer
from llamaserve.protocol.task_defaults import TaskDefaults
from llamaserve.protocol.tokenizer import Tokenizer

log = logging.getLogger("llamaserve.chat")


class EngineBridge:
    def __init__(self, scheduler_factory):
        self.loop: asyncio.AbstractEventLoop | None = None
        self.scheduler: Scheduler = scheduler_factory(self._deliver)
        self.scheduler.on_ready = self._model_ready
        self._renderer: ChatRenderer | None = None
        self._chat: openai.ChatSetup | None = None
        self._chat_error: str | None = None  # why the chat template cannot be used

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    @property
    def model(self):
        if self.scheduler.failure is not None:
            raise Unavailable(self.scheduler.failure.message)
        if not self.scheduler.ready.is_set() or self.scheduler.model is None:
            raise Unavailable("Loading model")
        return self.scheduler.model

    @property
    def tokenizer(self) -> Tokenizer:
        """The loaded model's tokenizer (503 while loading)."""
        return self.model

    def task_defaults(self) -> TaskDefaults:
        """The server's side of a request's tasks, as it is now (POST /props changes it)."""
        config = self.scheduler.config
        return TaskDefaults(config.sampling, config.cache_reuse, config.system_prompt, SpecParams.of(config.spec))

    @property
    def renderer(self) -> ChatRenderer:
        """The prompt renderer (503 while loading; the template's error where it cannot be used)."""
        self.model
        if self._chat_error is not None:
            raise ServerError(self._chat_error)  # a new one each time: a raised exception keeps its traceback
        return self._renderer

    @property
    def chat(self) -> openai.ChatSetup:
        """The server's chat side, what protocol.openai plans every chat request with."""
        self.renderer
        return self._chat

    def chat_server(self) -> openai.ChatServer:
        """What a chat request is translated with, as it is now (503 while loading; the template's error
        where it cannot be used). The chat families' protocol functions call it themselves, once their
        own checks have passed."""
        return openai.ChatServer(self.chat, self.tokenizer, self.task_defaults())

    def _model_ready(self, model) -> None:
        """On the scheduler thread, the model just loaded: build the renderer once."""
        config = self.scheduler.config
        try:
            renderer = ChatRenderer(model, BuiltinTemplates(builtin_template_names(), apply_builtin_template),
                                    config.chat_template, config.use_jinja)
        except Exception as exc:  # noqa: BLE001 - a template that cannot be used fails the chat routes only
            self._chat_error = exc.message if isinstance(exc, ServerError) else str(exc)
            return
        self._renderer = renderer
        self._chat = openai.ChatSetup(
            render=renderer.render, format=renderer.format, caps=renderer.caps, prefill_assistant=config.prefill_assistant,
            template_kwargs=config.chat_template_kwargs, reasoning_format=config.reasoning_format,
            max_n=config.slots, model_alias=config.model_alias,
            report=lambda problem: log.warning("tool call left in content: %s", problem),
            reasoning_budget=config.reasoning_budget, reasoning_budget_message=config.reasoning_budget_message,
            reasoning_effort=config.reasoning_effort, reasoning_preserve=config.reasoning_preserve,
            skip_chat_parsing=config.skip_chat_parsing, verbose=config.verbose, special_pieces=renderer.special_pieces,
            multimodal=model.projector is not None,
        )

    # scheduler thread -> event loop
    def _deliver(self, results: list[Result]) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(_dispatch, results)

    def check(self, tasks: list[Task]) -> None:
        """Raise now what the engine would answer these tasks with (e.g. 501 for generation on an
        embedding-only server), then a 400 with the reason if libllama will not compile their grammar.
        Every generating route calls it before queueing, so that a streaming request gets the refusal
        as its status too, not as an error Result (compiling takes well under a millisecond for
        typical grammars, a few for the largest, so it runs inline)."""
        for t in tasks:
            self.scheduler.validate(t)
        grammar = tasks[0].params.grammar if tasks else ""
        if grammar:
            model = self.model
            constraints.check_grammar(grammar, lambda g: grammar_compiles(model, g))

    def run(self, request: Request, tasks: list[Task]) -> AsyncIterator[Result]:
        """Check the request limits now (raising a 4xx/503 ServerError), then return an iterator that
        submits the tasks and yields their Results as they come, cancelling them if the client goes away.

        Call it before starting a streamed response, so a refusal is a proper HTTP status rather
        than an error event in a 200 stream."""
        config = self.scheduler.config
        limits.check_tasks(config, tasks)
        limits.check_queue(config, self.scheduler.occupancy(), len(tasks))
        return self._run(request, tasks)

    async def _run(self, request: Request, tasks: list[Task]) -> AsyncIterator[Result]:
        channel = _Channel()
        for t in tasks:
            t.sink = channel.put

        def cancel() -> None:
            for t in tasks:
                t.cancel()
            self.scheduler.wake()

        def stalled() -> None:
            # the client stopped reading (its socket and uvicorn's buffer are full): free the slot now
            # rather than generate into memory; the stream ends after what is buffered
            log.warning("%s %s: the client is not reading its stream (%d results waiting): its %s cancelled",
                        request.method, request.url.path, len(channel.items), "task" if len(tasks) == 1 else "tasks")
            channel.disconnect()

        channel.on_overflow = stalled
        # at once, even while the handler is stuck in a send (or was abandoned there: api/timeouts.py)
        channel.on_gone = cancel
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


# Results one request may have waiting for its handler. A handler takes them as they come unless it is
# stuck sending to a client that stopped reading (after the socket's and uvicorn's buffers, some hundred
# KB); one token is one result, so this is a client more than a thousand tokens behind.
STALLED_RESULTS = 1024


class _Channel:
    """Results of one request, handed from the loop's dispatch to the handler.

    Cheaper per token than an asyncio.Queue plus asyncio.wait on two futures:
    one future per wait, created only when nothing is pending.
    """

    __slots__ = ("items", "waiter", "gone", "on_overflow", "on_gone")

    def __init__(self) -> None:
        self.items: list[Result] = []
        self.waiter: asyncio.Future | None = None
        self.gone = False
        self.on_overflow: Callable[[], None] | None = None  # called once, when more than STALLED_RESULTS wait
        self.on_gone: Callable[[], None] | None = None  # called once, when the client is gone

    def put(self, result: Result) -> None:
        self.items.append(result)
        if len(self.items) > STALLED_RESULTS and self.on_overflow is not None:
            overflow, self.on_overflow = self.on_overflow, None
            overflow()
        self._wake()

    def disconnect(self) -> None:
        self.gone = True
        gone, self.on_gone = self.on_gone, None
        if gone is not None:
            gone()
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
