"""Which models run: load on demand (one load however many requests wait), unload, evict the least
recently used idle model at --models-max, unload models idle for --models-idle-ttl, notice dead children.

Everything runs on the event loop, so state changes between two awaits are atomic; waiters sleep on
`_changed` and look again whenever something moved."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from llamaserve.config import Config
from llamaserve.errors import InvalidRequest, ServerError, Unavailable
from llamaserve.hub.cache import remove_model
from llamaserve.hub.fetch import Source, resolve
from llamaserve.hub.names import HubError, split_repo_tag, valid_repo_id
from llamaserve.hub.progress import Progress
from llamaserve.router.catalog import Catalog, CatalogEntry
from llamaserve.router.child import Child, ChildFailed, child_argv, free_port

log = logging.getLogger("llamaserve.router")

UNLOADED, DOWNLOADING, LOADING, LOADED, FAILED = "unloaded", "downloading", "loading", "loaded", "failed"

# Flags whose values are secrets: shown as "***" in the listing.
_SECRET_FLAGS = {"api_keys", "hf_token"}


class LoadFailed(ServerError):
    """The model's child exited instead of serving; the message carries the child's reason."""


@dataclass
class ModelState:
    entry: CatalogEntry
    status: str = UNLOADED
    child: Child | None = None  # set from spawn until the process has exited: it holds a --models-max place
    active: int = 0  # requests being proxied to it: an active model is never evicted
    waiters: int = 0  # requests waiting for it to load: once loaded, they get it before anyone may evict it
    last_used: float = 0.0  # loop time of the last request's start or end
    exit_code: int | None = None
    reason: str = ""  # why it failed
    info: dict[str, Any] = field(default_factory=dict)  # the child's /v1/models entry while loaded
    load_task: asyncio.Task | None = None
    stop_task: asyncio.Task | None = None
    abort: bool = False  # an unload arrived while loading
    on_demand: bool = False  # the load was started by requests (not POST /models/load): it ends when none waits
    progress: Progress | None = None  # while its files download
    fetch_task: asyncio.Task | None = None  # POST /models: a download without a load

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def serving(self) -> bool:
        return self.status == LOADED and self.child is not None and not self.child.stopping


class ModelPool:
    def __init__(self, config: Config, catalog: Catalog, client: httpx.AsyncClient):
        self.config = config
        self.catalog = catalog
        self.client = client
        self.states = {entry.name: ModelState(entry) for entry in catalog}
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._closing = False

    # --- lookup ---

    def state(self, name: str) -> ModelState:
        entry = self.catalog.resolve(name)
        if entry is None:
            known = ", ".join(self.states)
            raise InvalidRequest(f"model '{name}' not found (available: {known})")
        return self.states[entry.name]

    def add_repo(self, name: str) -> ModelState:
        """The state of a model named by a Hugging Face repository id ("user/repo[:quant]"), added to the
        catalog when it is not there yet: its files are fetched when it is first loaded."""
        entry = self.catalog.resolve(name)
        if entry is not None:
            return self.states[entry.name]
        try:
            repo, _ = split_repo_tag(name)
        except HubError:
            raise InvalidRequest(f"model '{name}' not found, and it is not a Hugging Face repository "
                                 "(<user>/<model>[:quant])") from None
        if not valid_repo_id(repo):
            raise InvalidRequest(f"model '{name}' not found, and '{repo}' is not a repository id")
        entry = CatalogEntry(name, "", "cache", hf_repo=name)
        self.catalog.add(entry)
        state = self.states[name] = ModelState(entry)
        return state

    @property
    def hub_source(self) -> Source:
        c = self.config
        return Source(c.model_cache_dir, c.hub_endpoint, c.hf_token, c.offline)

    async def fetch(self, state: ModelState) -> None:
        """Download the model's files into the cache (once, however many ask); ChildFailed with the reason."""
        if state.fetch_task is None:
            state.fetch_task = self._spawn_task(self._fetch(state), f"fetch-{state.name}")
        await asyncio.shield(state.fetch_task)

    async def _fetch(self, state: ModelState) -> None:
        entry = state.entry
        before = state.status
        state.status, state.progress = DOWNLOADING, Progress(terminal=False)
        self._notify()
        try:
            log.info("model %s: fetching %s", state.name, entry.hf_repo)
            files = await asyncio.to_thread(resolve, self.hub_source, entry.hf_repo, entry.hf_file,
                                            mmproj=self.config.mmproj_auto, progress=state.progress)
        except HubError as exc:
            state.status, state.reason = FAILED, exc.message
            raise ChildFailed(exc.message, None) from None
        finally:
            state.progress, state.fetch_task = None, None
            self._notify()
        entry.path, entry.mmproj, entry.hf_repo, entry.hf_file = files.model, files.mmproj, "", ""
        state.status = before if before != DOWNLOADING else UNLOADED
        state.reason = ""

    def download(self, state: ModelState) -> None:
        """POST /models: fetch the files in the background; the listing shows the progress, then the model
        as unloaded (or failed, with the reason)."""
        async def run() -> None:
            try:
                await self.fetch(state)
                log.info("model %s: downloaded to %s", state.name, state.entry.path)
            except ChildFailed as exc:
                log.error("model %s: download failed: %s", state.name, exc.reason)

        state.status = DOWNLOADING  # listed so at once, not only once the task has started
        self._spawn_task(run(), f"download-{state.name}")

    def args(self, state: ModelState, port: int | None = None) -> list[str]:
        """The child's command line: preset flags, then the router's own flags on top."""
        flags = {**state.entry.flags, **self.config.child_flags}
        tokens = [t for dest in flags for t in flags[dest]]
        return child_argv(state.entry.path, state.name, port, tokens)

    def shown_args(self, state: ModelState) -> list[str]:
        child = state.child
        argv = list(child.argv) if child is not None else self.args(state)
        secret_names = {t for dest in _SECRET_FLAGS for t in self.config.child_flags.get(dest, [])[:1]}
        return [("***" if i > 0 and argv[i - 1] in secret_names else a) for i, a in enumerate(argv)]

    def listed(self) -> list[ModelState]:
        """The models /models lists: all but the hidden (deduplicated) ones."""
        return [s for s in self.states.values() if not s.entry.hidden]

    async def reload(self, catalog: Catalog) -> None:
        """Take a rebuilt catalog: models gone from it leave (unloaded first), models whose entry changed are
        unloaded so that the next load uses the new one, new ones are added."""
        old = self.states
        for name, state in list(old.items()):
            entry = catalog.entries.get(name)
            if entry is None and state.entry.source == "cache" and (state.entry.hf_repo or state.fetch_task):
                catalog.add(state.entry)  # a download asked for through the API and not finished: kept
                continue
            if entry is None or entry != state.entry:
                if state.child is not None or state.load_task is not None:
                    log.info("reload: unloading model %s (%s)", name, "removed" if entry is None else "changed")
                    await self.unload(state)
        self.catalog = catalog
        self.states = {e.name: (old[e.name] if e.name in old else ModelState(e)) for e in catalog}
        for name, state in self.states.items():
            state.entry = catalog.entries[name]
        log.info("reload: models: %s", ", ".join(s.name for s in self.listed()))
        self._notify()

    # --- change notification ---

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self) -> None:
        await self._changed.wait()

    def _spawn_task(self, coro, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- requests ---

    async def acquire(self, name: str, autoload: bool) -> ModelState:
        """The model's state, loaded and counted active; release() it when the request ends."""
        state = self.state(name)
        state.waiters += 1
        try:
            while not state.serving:
                if state.stop_task is not None:
                    await asyncio.shield(state.stop_task)
                    continue
                if state.load_task is None:
                    if not autoload:
                        why = f" (it failed: {state.reason})" if state.status == FAILED else ""
                        raise InvalidRequest(f"model '{state.name}' is not loaded{why}; load it with POST /models/load")
                    self.load(state, on_demand=True)
                # shield: a client that gives up must not cancel a load other requests wait for
                await asyncio.shield(state.load_task)
            state.active += 1
        finally:
            state.waiters -= 1
            if state.waiters == 0:
                self._notify()  # it may have become idle
        state.last_used = time.monotonic()
        return state

    def idle(self, state: ModelState) -> bool:
        return state.serving and state.active == 0 and state.waiters == 0

    def release(self, state: ModelState) -> None:
        state.active -= 1
        state.last_used = time.monotonic()
        if state.active == 0:
            self._notify()  # an idle model may make room for a waiting load

    # --- lifecycle ---

    def load(self, state: ModelState, on_demand: bool = False) -> asyncio.Task:
        """Start loading (once); the task ends when the model serves, or raises why it does not. A load on
        demand (for waiting requests) that has not found a --models-max place yet is given up once no
        request waits for it anymore, so that a client that left costs no running model its place."""
        state.on_demand = on_demand and (state.load_task is None or state.on_demand)
        if state.load_task is None:
            state.abort = False
            state.status = LOADING
            state.reason = ""
            state.exit_code = None
            state.load_task = self._spawn_task(self._load(state), f"load-{state.name}")
            # a failure nobody awaits is still reported in the listing, not as "never retrieved"
            state.load_task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._notify()
        return state.load_task

    async def _load(self, state: ModelState) -> None:
        child = None
        try:
            if state.entry.hf_repo:
                await self.fetch(state)  # before a --models-max place is taken: a download holds none
                state.status = LOADING
            await self._make_room(state)
            port = free_port()
            child = Child(state.name, self.args(state, port), port)
            state.child = child  # holds its --models-max place from now on
            log.info("loading model %s on port %d: %s", state.name, port, " ".join(self.shown_args(state)))
            t0 = time.monotonic()
            await child.start()
            await child.wait_ready(self.client)
            state.info = await child.info(self.client)
            if state.abort:
                raise ChildFailed("unloaded while loading", None)
            state.status = LOADED
            state.last_used = time.monotonic()
            log.info("model %s loaded in %.2f s", state.name, time.monotonic() - t0)
            self._spawn_task(self._watch(state, child), f"watch-{state.name}")
        except ChildFailed as exc:
            if child is not None:
                child.kill()
                await child.exited.wait()
            if state.child is child:
                state.child = None
            if state.abort or self._closing or state.on_demand and state.waiters == 0:
                state.status, state.reason = UNLOADED, ""
                raise Unavailable(f"model '{state.name}' was unloaded while it was loading") from None
            state.status, state.reason, state.exit_code = FAILED, exc.reason, exc.exit_code
            log.error("model %s failed to load: %s", state.name, exc.reason)
            raise LoadFailed(f"model '{state.name}' failed to load: {exc.reason}") from None
        except BaseException:
            if child is not None:
                child.kill()
            if state.child is child:
                state.child = None
            state.status = UNLOADED
            raise
        finally:
            state.load_task = None
            self._notify()

    async def _make_room(self, state: ModelState) -> None:
        """Wait for a --models-max place, unloading the least recently used idle model if all are taken."""
        limit = self.config.models_max
        while True:
            if state.abort or self._closing:
                raise ChildFailed("unloaded while loading", None)
            if limit <= 0:
                return
            running = [s for s in self.states.values() if s.child is not None]
            if len(running) < limit:
                return
            if state.on_demand and state.waiters == 0:
                raise ChildFailed("no request waits for it anymore", None)
            idle = [s for s in running if self.idle(s)]
            if idle:
                victim = min(idle, key=lambda s: s.last_used)
                log.info("--models-max %d reached: unloading %s, the least recently used idle model", limit, victim.name)
                await self.unload(victim)
            else:
                await self._wait_change()  # every model is busy: wait for one to go idle or away

    async def _watch(self, state: ModelState, child: Child) -> None:
        """A child that exits on its own is failed; the next request loads it again."""
        await child.exited.wait()
        if state.child is not child or child.stopping or self._closing:
            return
        state.child = None
        state.info = {}
        state.status, state.exit_code = FAILED, child.exit_code
        state.reason = f"the model's process {child.describe_exit()}"
        log.error("model %s: %s", state.name, state.reason)
        self._notify()

    async def unload(self, state: ModelState) -> None:
        """Stop the model's child (or abort its load); returns once the process is gone."""
        if state.load_task is not None:
            state.abort = True
            if state.child is not None:
                state.child.kill()
            self._notify()
            with contextlib.suppress(Exception):
                await asyncio.shield(state.load_task)
            return
        if state.stop_task is None:
            if state.child is None:
                return
            state.child.stopping = True  # from now on no request is routed to it
            state.stop_task = self._spawn_task(self._stop(state), f"unload-{state.name}")
        await asyncio.shield(state.stop_task)

    async def _stop(self, state: ModelState) -> None:
        child = state.child
        assert child is not None
        try:
            log.info("unloading model %s", state.name)
            await child.stop(state.entry.stop_timeout)
        finally:
            state.child = None
            state.info = {}
            state.status = UNLOADED
            state.stop_task = None
            self._notify()

    async def expire_idle(self) -> None:
        """Background loop for --models-idle-ttl."""
        ttl = self.config.models_idle_ttl
        while True:
            await asyncio.sleep(min(max(ttl / 4, 0.1), 5.0))
            now = time.monotonic()
            for state in self.states.values():
                if self.idle(state) and now - state.last_used >= ttl:
                    log.info("model %s idle for %.0f s: unloading it", state.name, now - state.last_used)
                    self._spawn_task(self.unload(state), f"expire-{state.name}")

    # --- router start and stop ---

    def start(self) -> None:
        for state in self.states.values():
            if state.entry.load_on_startup:
                self.load(state)
        if self.config.models_idle_ttl > 0:
            self._spawn_task(self.expire_idle(), "idle-ttl")

    async def close(self) -> None:
        self._closing = True
        for task in list(self._tasks):
            if task.get_name() == "idle-ttl":
                task.cancel()
        await asyncio.gather(*(self.unload(s) for s in self.states.values()), return_exceptions=True)

    # --- listing ---

    def describe(self, state: ModelState, created: int) -> dict[str, Any]:
        status: dict[str, Any] = {"value": state.status, "args": self.shown_args(state)}
        if state.progress is not None:
            status["progress"] = state.progress.snapshot()  # {file url: {"done", "total"}}
        if state.status == FAILED:
            status.update(failed=True, exit_code=state.exit_code, reason=state.reason)
        entry = state.entry
        out: dict[str, Any] = {
            "id": state.name,
            "aliases": list(entry.aliases),
            "tags": [],
            "object": "model",
            "owned_by": "llamacpp",
            "created": created,
            "path": entry.path,
            "source": entry.source,
            "default": state.name == self.catalog.default,
            "status": status,
        }
        if entry.mmproj:
            out["mmproj"] = entry.mmproj
        for key, value in state.info.items():
            out.setdefault(key, value)
        return out

    async def remove(self, state: ModelState) -> None:
        """DELETE /models: a cache model's files leave the disk and the model the listing."""
        if state.entry.source != "cache":
            raise InvalidRequest(f"model '{state.name}' is not a Hugging Face cache model: only those are removed")
        if state.child is not None or state.load_task is not None or state.fetch_task is not None:
            raise InvalidRequest(f"model '{state.name}' is running: unload it first")
        repo, tag = split_repo_tag(state.name)
        removed = await asyncio.to_thread(remove_model, self.config.model_cache_dir, repo, tag)
        self.catalog.remove(state.name)
        self.states.pop(state.name, None)
        log.info("model %s: %s", state.name, "removed from the cache" if removed else "was not in the cache")
        self._notify()

    def unload_error(self, state: ModelState) -> ServerError | None:
        if state.child is None and state.load_task is None:
            return InvalidRequest(f"model '{state.name}' is not running")
        return None

    def load_error(self, state: ModelState) -> ServerError | None:
        if state.child is not None or state.load_task is not None:
            return InvalidRequest(f"model '{state.name}' is already running")
        return None


def child_url(state: ModelState) -> str:
    """Where an acquired model's child listens (acquire() returns only serving models)."""
    if state.child is None:  # pragma: no cover - acquire() guarantees a child
        raise Unavailable(f"model '{state.name}' is not running")
    return state.child.url
