"""What every route does with a request around its family's translation: the JSON body read, the log
line's facts noted, the engine's Results streamed or collected."""

from __future__ import annotations

from typing import Any, AsyncIterator

import orjson
from starlette.requests import Request

from llamaserve.api.bridge import ClientGone
from llamaserve.api.errors import as_server_error
from llamaserve.engine import Result, Task
from llamaserve.errors import InvalidRequest


async def read_json(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"invalid JSON in request body: {exc}") from None


async def read_json_object(request: Request) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    return body


def note(request: Request, **fields: Any) -> None:
    """Facts for the one log line of this request (see api/app.py)."""
    request.scope.setdefault("llamaserve.log", {}).update(fields)


def note_results(request: Request, results) -> None:
    results = list(results)
    if results:
        note(
            request,
            prompt=sum(r.n_prompt for r in results),
            cached=sum(r.timings.cache_n for r in results if r.timings),
            predicted=sum(r.n_decoded for r in results),
            stop=",".join(r.stop_type for r in results),
        )


async def collect(request: Request, tasks: list[Task]) -> list[Result] | None:
    """Final results in index order, or None when the client went away; noted for the log line."""
    try:
        finals = await request.app.state.bridge.collect(request, tasks)
    except ClientGone:
        return None
    note_results(request, finals)
    return finals


async def stream_results(request: Request, tasks: list[Task], finals: list[Result]) -> AsyncIterator[Result]:
    """Results of a streamed request as they come, ending after an error or quietly when the client
    leaves; final Results are collected into `finals` and noted for the log line.

    Await it before the first thing a stream yields: the request limits are checked at the call
    (EngineBridge.run raises), and it waits for the first result, raising that result's error (a
    prompt longer than the context, say), so that sse_response still answers with the error's status
    and envelope, as llama-server does, instead of a 200 stream that carries the error."""
    results = _results(request, request.app.state.bridge.run(request, tasks), finals)
    try:
        first = await anext(results)
    except StopAsyncIteration:
        return results
    if first.error is not None:
        await results.aclose()
        raise as_server_error(first.error)
    return _prepend(first, results)


async def _prepend(first: Result, rest: AsyncIterator[Result]) -> AsyncIterator[Result]:
    yield first
    async for r in rest:
        yield r


async def _results(request: Request, results: AsyncIterator[Result], finals: list[Result]) -> AsyncIterator[Result]:
    try:
        async for r in results:
            if r.done:
                finals.append(r)
            yield r
            if r.error is not None:
                return
    except ClientGone:
        return
    finally:
        note_results(request, finals)
