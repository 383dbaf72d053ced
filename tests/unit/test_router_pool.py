"""The router's model pool with stand-in children (no processes): shared loads, --models-max eviction,
busy models kept, unload while loading, dead children, failures, idle TTL."""

from __future__ import annotations

import asyncio
import signal

import pytest

from llamaserve.config import Config
from llamaserve.errors import InvalidRequest, Unavailable
from llamaserve.router import pool as pool_module
from llamaserve.router.catalog import Catalog, CatalogEntry
from llamaserve.router.child import Child, ChildFailed
from llamaserve.router.pool import LoadFailed, ModelPool


class FakeChild(Child):
    """Serves as soon as `ready` is set; fails at once if its model is named "bad"."""

    spawned: list[FakeChild] = []
    ready: asyncio.Event

    async def start(self) -> None:
        FakeChild.spawned.append(self)

    async def wait_ready(self, client) -> None:
        if self.name == "bad":
            self.exit_code = 1
            self.exited.set()
            raise ChildFailed("cannot serve: not a model", 1)
        ready = asyncio.create_task(FakeChild.ready.wait())
        exited = asyncio.create_task(self.exited.wait())
        await asyncio.wait([ready, exited], return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        exited.cancel()
        if self.exited.is_set():
            raise ChildFailed(self.describe_exit(), self.exit_code)

    async def info(self, client) -> dict:
        return {"meta": {"n_ctx": 512}}

    async def stop(self, timeout: float) -> None:
        self.stopping = True
        self._exit(0)

    def kill(self) -> None:
        self.stopping = True
        self._exit(-signal.SIGKILL)

    def die(self) -> None:
        self._exit(-signal.SIGKILL)

    def _exit(self, code: int) -> None:
        if not self.exited.is_set():
            self.exit_code = code
            self.exited.set()


def run(test, names=("a", "b", "c"), **config):
    """Run `test(pool)` on a loop, with stand-in children that serve at once unless told otherwise."""

    async def main():
        FakeChild.spawned = []
        FakeChild.ready = asyncio.Event()
        FakeChild.ready.set()
        catalog = Catalog([CatalogEntry(n, f"/models/{n}.gguf", "models_dir") for n in names], default=names[0])
        pool = ModelPool(Config(**config), catalog, client=None)
        pool.start()
        try:
            await test(pool)
        finally:
            await pool.close()

    original = pool_module.Child
    pool_module.Child = FakeChild
    try:
        asyncio.run(main())
    finally:
        pool_module.Child = original


def spawned(name: str) -> int:
    return sum(1 for c in FakeChild.spawned if c.name == name)


async def settle():
    for _ in range(20):
        await asyncio.sleep(0)


def test_concurrent_requests_share_one_load():
    async def test(pool):
        FakeChild.ready.clear()
        waiting = [asyncio.create_task(pool.acquire("a", True)) for _ in range(5)]
        await settle()
        assert pool.states["a"].status == "loading" and spawned("a") == 1
        FakeChild.ready.set()
        states = await asyncio.gather(*waiting)
        assert spawned("a") == 1 and pool.states["a"].active == 5 and states[0].status == "loaded"
        assert pool.describe(states[0], 0)["meta"] == {"n_ctx": 512}

    run(test)


def test_models_max_unloads_the_least_recently_used_idle_model():
    async def test(pool):
        pool.release(await pool.acquire("a", True))
        pool.release(await pool.acquire("b", True))  # b used more recently than a
        pool.release(await pool.acquire("c", True))
        assert [pool.states[n].status for n in "abc"] == ["unloaded", "loaded", "loaded"]

    run(test, models_max=2)


def test_a_busy_model_is_never_evicted():
    async def test(pool):
        b = await pool.acquire("b", True)  # held: b is the least recently used, but busy
        pool.release(await pool.acquire("a", True))
        pool.release(await pool.acquire("c", True))
        assert [pool.states[n].status for n in "abc"] == ["unloaded", "loaded", "loaded"]
        pool.release(b)

    run(test, models_max=2)


def test_a_load_waits_while_every_model_is_busy():
    async def test(pool):
        a = await pool.acquire("a", True)
        wanted = asyncio.create_task(pool.acquire("b", True))
        await settle()
        assert not wanted.done() and spawned("b") == 0 and pool.states["b"].status == "loading"
        pool.release(a)
        b = await wanted
        assert (pool.states["a"].status, b.status) == ("unloaded", "loaded")

    run(test, models_max=1)


def test_a_load_on_demand_nobody_waits_for_anymore_takes_no_place():
    async def test(pool):
        a = await pool.acquire("a", True)
        wanted = asyncio.create_task(pool.acquire("b", True))
        await settle()
        wanted.cancel()  # the client left while b waited for a place
        await settle()
        pool.release(a)
        await settle()
        assert (pool.states["a"].status, pool.states["b"].status, spawned("b")) == ("loaded", "unloaded", 0)

    run(test, models_max=1)


def test_an_explicit_load_waits_for_its_place_without_requests():
    async def test(pool):
        a = await pool.acquire("a", True)
        task = pool.load(pool.states["b"])  # POST /models/load: no request waits, it loads anyway
        await settle()
        pool.release(a)
        await task
        assert (pool.states["a"].status, pool.states["b"].status) == ("unloaded", "loaded")

    run(test, models_max=1)


def test_unload_while_loading_aborts_the_load():
    async def test(pool):
        FakeChild.ready.clear()
        wanted = asyncio.create_task(pool.acquire("a", True))
        await settle()
        await pool.unload(pool.states["a"])
        with pytest.raises(Unavailable):
            await wanted
        assert pool.states["a"].status == "unloaded" and pool.states["a"].child is None

    run(test)


def test_a_child_that_dies_is_failed_then_loaded_again():
    async def test(pool):
        state = await pool.acquire("a", True)
        pool.release(state)
        first = state.child
        first.die()
        await settle()
        assert (state.status, state.exit_code, state.child) == ("failed", -signal.SIGKILL, None)
        assert "SIGKILL" in pool.describe(state, 0)["status"]["reason"]
        again = await pool.acquire("a", True)
        assert again.status == "loaded" and again.child is not first and spawned("a") == 2
        pool.release(again)

    run(test)


def test_a_failed_load_reports_the_childs_reason():
    async def test(pool):
        with pytest.raises(LoadFailed) as exc:
            await pool.acquire("bad", True)
        assert "cannot serve: not a model" in exc.value.message
        status = pool.describe(pool.states["bad"], 0)["status"]
        assert (status["value"], status["failed"], status["exit_code"]) == ("failed", True, 1)
        assert pool.states["bad"].child is None and pool.states["bad"].active == 0

    run(test, names=("a", "bad"))


def test_without_autoload_an_unloaded_model_is_refused():
    async def test(pool):
        with pytest.raises(InvalidRequest):
            await pool.acquire("a", False)
        assert spawned("a") == 0
        await pool.load(pool.states["a"])
        pool.release(await pool.acquire("a", False))

    run(test, models_autoload=False)


def test_idle_models_expire_after_the_ttl():
    async def test(pool):
        state = await pool.acquire("a", True)
        await asyncio.sleep(0.5)
        assert state.status == "loaded"  # in use: never expires
        pool.release(state)
        await asyncio.wait_for(_until(lambda: state.status == "unloaded"), 10)

    run(test, models_idle_ttl=0.2)


async def _until(predicate):
    while not predicate():
        await asyncio.sleep(0.02)


def test_requests_waiting_for_a_load_get_the_model_before_it_can_be_evicted():
    async def test(pool):
        FakeChild.ready.clear()
        for_b = [asyncio.create_task(pool.acquire("b", True)) for _ in range(2)]
        await settle()
        for_a = asyncio.create_task(pool.acquire("a", True))  # no room: b is loading
        await settle()
        FakeChild.ready.set()
        held = await asyncio.wait_for(asyncio.gather(*for_b), 5)
        assert spawned("b") == 1 and held[0].serving and not for_a.done()
        for state in held:
            pool.release(state)
        a = await asyncio.wait_for(for_a, 5)
        assert (a.status, pool.states["b"].status) == ("loaded", "unloaded")

    run(test, models_max=1)
