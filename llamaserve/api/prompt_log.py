"""--log-prompts-dir DIR: each generation request's prompt in a file of its own, for debugging.

As llama-server does, a file per request named by the time in milliseconds (here since the epoch,
so that files of several runs sort and never overwrite each other), holding the prompt the model reads
(a chat request's rendered template); a request with several prompts writes them as a JSON array.
"""

from __future__ import annotations

import logging
import os
import time

import orjson

from llamaserve.api.bridge import EngineBridge
from llamaserve.engine import COMPLETION, Task

log = logging.getLogger("llamaserve.http")


class PromptFiles:
    def __init__(self, directory: str):
        self.directory = directory
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            log.warning("cannot create the prompts directory %s: %s", directory, exc.strerror or exc)

    def write(self, prompts: list[str]) -> str | None:
        """Write one request's prompts; the file's path, or None when it could not be written."""
        body = prompts[0] if len(prompts) == 1 else orjson.dumps(prompts, option=orjson.OPT_INDENT_2).decode()
        stem = f"{time.time_ns() // 1_000_000:013d}"
        for n in range(1000):  # requests in the same millisecond get -1, -2, ...
            path = os.path.join(self.directory, f"{stem}-{n}.txt" if n else f"{stem}.txt")
            try:
                with open(path, "x", encoding="utf-8") as fh:
                    fh.write(body)
                return path
            except FileExistsError:
                continue
            except OSError as exc:
                log.error("cannot write the prompt to %s: %s", path, exc.strerror or exc)
                return None
        return None


class PromptLoggingBridge(EngineBridge):
    """The engine bridge that also writes the prompt of every generation it runs (not embeddings or
    reranking, as llama-server logs only its completion paths)."""

    def __init__(self, scheduler_factory, directory: str):
        super().__init__(scheduler_factory)
        self.prompt_files = PromptFiles(directory)

    def run(self, request, tasks: list[Task]):
        results = super().run(request, tasks)  # a request the limits refuse raises here and writes nothing
        generating = [t for t in tasks if t.kind == COMPLETION]
        if generating:
            model = self.model
            seen: set[tuple[int, ...]] = set()
            prompts = []
            for t in generating:  # the n choices of one prompt share it: written once
                key = tuple(t.prompt)
                if key not in seen:
                    seen.add(key)
                    prompts.append(model.detokenize(t.prompt, special=True))
            self.prompt_files.write(prompts)
        return results
