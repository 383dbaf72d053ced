"""Slot persistence (--slot-save-path): save a slot's KV cache and tokens to a file, restore or erase it.

Each action runs on the scheduler thread through Scheduler.call, between two steps; an action on a
busy slot waits until the slot is free (as llama-server defers it). Files are libllama's sequence
state files: the slot's token list, then its KV cells. Files written by llama-server can be restored
too: it stores its token list in a small versioned wrapper, read here when there is no media in it.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import os
import time
from dataclasses import dataclass

import llama_cpp.llama_cpp as ll

from llamaserve.engine.scheduler import DEFER, Scheduler
from llamaserve.errors import InvalidRequest, NotFound, NotSupported, ServerError

# llama-server's wrapper around the token list: LLAMA_TOKEN_NULL, version, n, tokens..., n_media, media...
_WRAPPED_MARK = -1
_WRAPPED_VERSION = 1


@dataclass
class SlotFileResult:
    id_slot: int
    n_tokens: int  # tokens saved, restored or erased
    n_bytes: int = 0  # file size written or read
    ms: float = 0.0


def save(scheduler: Scheduler, id_slot: int, path: str) -> concurrent.futures.Future:
    return scheduler.call(lambda: _when_free(scheduler, id_slot, lambda slot: _save(scheduler, slot, path)))


def restore(scheduler: Scheduler, id_slot: int, path: str) -> concurrent.futures.Future:
    return scheduler.call(lambda: _when_free(scheduler, id_slot, lambda slot: _restore(scheduler, slot, path)))


def erase(scheduler: Scheduler, id_slot: int) -> concurrent.futures.Future:
    return scheduler.call(lambda: _when_free(scheduler, id_slot, lambda slot: _erase(scheduler, slot)))


def _when_free(scheduler: Scheduler, id_slot: int, action):
    if not 0 <= id_slot < len(scheduler.slots):
        raise InvalidRequest("Invalid slot ID")
    if scheduler.config.embedding_mode or not scheduler.model.has_memory:
        raise NotSupported("This server keeps no prompt cache in its slots (embedding mode): nothing to save or restore")
    slot = scheduler.slots[id_slot]
    if slot.busy:
        return DEFER
    return action(slot)


def _save(scheduler: Scheduler, slot, path: str) -> SlotFileResult:
    t0 = time.perf_counter()
    tokens = (ll.llama_token * max(1, len(slot.cache)))(*slot.cache)
    # Written beside the target and renamed over it: a failed write never leaves half a file under the name.
    partial = f"{path}.partial-{os.getpid()}"
    n = ll.llama_state_seq_save_file(scheduler.model.ctx, os.fsencode(partial), slot.id, tokens, len(slot.cache))
    if n == 0:
        _unlink(partial)
        raise ServerError("Unable to save slot")
    try:
        os.replace(partial, path)
    except OSError as exc:
        _unlink(partial)
        raise ServerError(f"Unable to save slot: {exc.strerror}") from None
    return SlotFileResult(slot.id, len(slot.cache), n, (time.perf_counter() - t0) * 1e3)


def _restore(scheduler: Scheduler, slot, path: str) -> SlotFileResult:
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise NotFound(f"Unable to restore slot: no slot save file named '{name}'")
    t0 = time.perf_counter()
    model = scheduler.model
    slot.forget_from(model.memory, 0)  # the old state goes whatever happens next
    count = ctypes.c_size_t(0)
    n = ll.llama_state_seq_load_file(model.ctx, os.fsencode(path), slot.id, None, 0, ctypes.byref(count))
    if n != 0:
        tokens = (ll.llama_token * max(1, count.value))()
        n = ll.llama_state_seq_load_file(model.ctx, os.fsencode(path), slot.id, tokens, len(tokens), ctypes.byref(count))
    try:
        if n == 0:
            raise InvalidRequest("Unable to restore slot: No available space in KV cache or invalid slot save file")
        restored = _unwrap(list(tokens[: count.value]))
        if len(restored) > slot.n_ctx:
            raise InvalidRequest("Unable to restore slot: Restored prompt does not fit in the slot context")
        if any(not 0 <= t < model.n_vocab for t in restored):
            raise InvalidRequest("Unable to restore slot: Invalid tokens in slot save file")
    except InvalidRequest:
        ll.llama_memory_seq_rm(model.memory, slot.id, -1, -1)
        raise
    slot.cache[:] = restored
    # the file does not say which adapter scales computed it: taken as the server's current ones
    slot.lora = scheduler.lora_scales
    return SlotFileResult(slot.id, len(restored), n, (time.perf_counter() - t0) * 1e3)


def _unwrap(tokens: list[int]) -> list[int]:
    """The token list of a file, plain (ours, older llama-server) or in llama-server's wrapper."""
    if not tokens or tokens[0] != _WRAPPED_MARK:
        return tokens
    if len(tokens) < 4 or tokens[1] != _WRAPPED_VERSION:
        raise InvalidRequest("Unable to restore slot: Unsupported server tokens state version")
    n = tokens[2]
    if not 0 <= n <= len(tokens) - 4:
        raise InvalidRequest("Unable to restore slot: Unexpected end of server tokens state")
    if tokens[3 + n] != 0:
        raise InvalidRequest("Unable to restore slot: Cannot restore media tokens without an mmproj")
    if len(tokens) != 4 + n:
        raise InvalidRequest("Unable to restore slot: Trailing data in server tokens state")
    return tokens[3 : 3 + n]


def _erase(scheduler: Scheduler, slot) -> SlotFileResult:
    n = len(slot.cache)
    slot.forget_from(scheduler.model.memory, 0)
    return SlotFileResult(slot.id, n)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
