"""Where a starting request's prompt prefix comes from, and what a slot's cache becomes when it changes hands.

A prompt's longest cached prefix may be held by
- the slot the request got (its last conversation): kept as it is, nothing moves;
- another slot, busy or idle: attached with llama_memory_seq_cp. In a unified KV cache (-kvu) the
  cells are then shared, not copied: a system prompt that eight conversations start with is held once;
- the host-memory cache (--cache-ram): its state copied back into the slot;
- a slot still evaluating it for another request: the request waits for that "leader" to get past the
  shared part and attaches it then, instead of evaluating the same tokens side by side.
The longest wins (ties in that order: what moves least). A slot about to lose a conversation worth
keeping first saves it into the host cache, and with --cache-idle-slots every idle slot's conversation
is saved there when a request starts, so that later a full KV cache can drop it without losing it.

Restoring or attaching never changes what a request means: the same tokens at the same positions,
computed with the same LoRA scales (a state computed with others never matches).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import llama_cpp.llama_cpp as ll

from llamaserve.engine.media import floor as media_floor
from llamaserve.engine.prompt_cache import HostCache
from llamaserve.engine.slot import Slot, common_prefix
from llamaserve.engine.stats import EngineStats
from llamaserve.engine.types import Task

log = logging.getLogger("llamaserve.engine")

# A slot about to lose fewer tokens than this (a re-rendered last turn, say) is not saved.
SAVE_MIN_TOKENS = 16
# Waiting for a leader pays only when it saves at least this many tokens of evaluation.
FOLLOW_MIN_TOKENS = 16


@dataclass
class Start:
    n_cached: int  # prompt tokens the slot's sequence holds now
    leader: Slot | None = None  # a slot evaluating a longer shared prefix: wait for it
    follow_n: int = 0  # the prefix taken from the leader


class PromptReuse:
    def __init__(self, model, slots: list[Slot], stats: EngineStats, cache_ram_mib: int, cache_idle_slots: bool):
        self.model = model
        self.slots = slots
        self.stats = stats
        self.host = HostCache(cache_ram_mib) if cache_ram_mib != 0 else None
        self.cache_idle_slots = cache_idle_slots and self.host is not None
        if cache_idle_slots and self.host is None:
            log.info("--cache-idle-slots needs the host prompt cache, which --cache-ram 0 turns off: idle slots are not saved")
        if self.cache_idle_slots:
            log.debug("idle slots are saved to the host prompt cache when a request starts "
                      "(__TEST_TAG_CACHE_IDLE_SLOTS_ENABLED__)")

    # --- a request starts ---

    def start(self, slot: Slot, task: Task) -> Start:
        """Put the longest cached prefix of task's prompt into slot's sequence (or find a leader)."""
        prompt, lora = task.prompt, task.lora_scales
        last = len(prompt) - 1  # the last prompt token is always decoded again, for its logits
        own = common_prefix(slot.cache, prompt) if task.cache_prompt and slot.lora == lora else 0
        best, source, entry = own, None, None
        if task.cache_prompt:
            for other in self.slots:
                if other is not slot and other.lora == lora and other.leader is None and other.cache:
                    n = common_prefix(other.cache, prompt)
                    if n > best:
                        best, source = n, other
            if self.host is not None:
                found, n = self.host.lookup(prompt, lora)
                if n > best:
                    best, source, entry = n, None, found
        leader, follow_n = self._leader(task, min(best, last))
        # before the slot loses what it holds (all but its own prefix where that serves best, else all
        # of it), a conversation worth keeping goes to the host cache
        keeps = own if leader is None and source is None and entry is None else 0
        if len(slot.cache) - keeps >= SAVE_MIN_TOKENS:
            self._save(slot)
        if leader is not None:
            slot.forget_from(self.model.memory, 0)
            self.stats.cache_hits += 1
            return Start(0, leader, follow_n)
        if source is not None:
            n = min(best, last)
            slot.copy_prefix(self.model.memory, source, n, self.model.unified_kv)
            keep = self.usable_prefix(slot, n, task.media)
            self.stats.prompt_tokens_attached += keep
            log.debug("slot %d: attached %d prompt tokens from slot %d", slot.id, keep, source.id)
        elif entry is not None:
            keep = self._restore(slot, entry, min(best, last), task.media)
        else:
            keep = own
            # (KV-shifted runs could hold part of an image: not with media)
            if task.cache_prompt and slot.lora == lora and task.cache_reuse > 0 and not task.media:
                keep = slot.reuse_chunks(self.model.memory, prompt, keep, task.cache_reuse)
            keep = self.usable_prefix(slot, min(keep, last), task.media)
        slot.lora = lora
        if keep:
            self.stats.cache_hits += 1
        else:
            self.stats.cache_misses += 1
        return Start(keep)

    def started(self, slot: Slot) -> None:
        """After a request took `slot`: with --cache-idle-slots, save the idle slots' conversations."""
        if not self.cache_idle_slots:
            return
        for other in self.slots:
            if other is not slot and not other.busy and other.cache and self._save(other):
                log.debug("slot %d: saved idle slot to the host prompt cache (__TEST_TAG_CACHE_IDLE_SLOT__)", other.id)

    def _leader(self, task: Task, cached: int) -> tuple[Slot | None, int]:
        """A slot evaluating a prompt that shares more with this one than `cached`: the choices of one
        prompt always wait for the first; other requests when it saves FOLLOW_MIN_TOKENS or more."""
        prompt = task.prompt
        best, best_n = None, cached
        for s in self.slots:
            t = s.task
            if t is None or s.state != Slot.PROMPT or s.leader is not None or s.lora != task.lora_scales:
                continue
            sibling = task.prompt_group is not None and t.prompt_group is task.prompt_group
            if not (sibling or task.cache_prompt):
                continue
            n = min(common_prefix(s.prompt_np, prompt), len(prompt) - 1)
            if n > best_n and (sibling or n - cached >= FOLLOW_MIN_TOKENS):
                best, best_n = s, n
        return best, best_n

    def follow(self, leader: Slot) -> None:
        """After a step of the leader's prompt: the followers it has got far enough for attach their prefix."""
        for s in self.slots:
            if s.leader is not leader or leader.n_past < s.follow_n:
                continue
            s.leader = None
            s.copy_prefix(self.model.memory, leader, s.follow_n, self.model.unified_kv)
            s.n_cached = self.usable_prefix(s, s.follow_n, s.task.media)
            self.stats.prompt_tokens_cached += s.n_cached
            self.stats.prompt_tokens_attached += s.n_cached
            log.debug("slot %d: attached %d prompt tokens from slot %d", s.id, s.n_cached, leader.id)

    # --- the KV cache is full ---

    def drop_idle(self) -> bool:
        """Free the cells of idle slots (saved to the host cache first where there is one). False if none held any."""
        idle = [s for s in self.slots if not s.busy and s.n_past]
        for s in idle:
            self._save(s)
            saved = s.in_host is not None
            log.warning("slot %d: the KV cache is full; dropping its cached %d tokens%s", s.id, s.n_past,
                        " (kept in the host prompt cache)" if saved else "")
            s.forget_from(self.model.memory, 0)
        return bool(idle)

    # --- helpers ---

    def usable_prefix(self, slot: Slot, keep: int, spans: tuple = ()) -> int:
        """Cut the slot's sequence to its first `keep` tokens and return how many remain usable:
        all of them, or none where libllama cannot keep a partial sequence (recurrent state) or
        the sliding-window layers no longer hold the window that position `keep` attends to.
        spans: the new prompt's media chunks, which are evaluated whole (a cut inside one moves to its start)."""
        mem = self.model.memory
        keep = media_floor(spans, keep)
        if keep > 0 and self.model.n_swa > 0:
            pos_min = ll.llama_memory_seq_pos_min(mem, slot.id)
            if pos_min > max(0, keep - self.model.n_swa):
                log.debug("slot %d: the sliding window of the %d cached tokens is gone, evaluating again", slot.id, keep)
                keep = 0
        if keep < slot.n_past and not slot.forget_from(mem, keep):
            slot.forget_from(mem, 0)
            keep = 0
        return keep

    def _restore(self, slot: Slot, entry, n: int, spans: tuple = ()) -> int:
        mem = self.model.memory
        slot.forget_from(mem, 0)
        if not self.host.restore(self.model.ctx, entry, slot.id):
            log.warning("slot %d: could not restore %d tokens from the host prompt cache (no room in the KV cache)",
                        slot.id, entry.n_tokens)
            ll.llama_memory_seq_rm(mem, slot.id, -1, -1)
            return 0
        slot.cache[:] = entry.tokens.tolist()
        slot.lora = entry.lora
        slot.in_host = (entry, entry.n_tokens)
        keep = self.usable_prefix(slot, n, spans)
        self.stats.prompt_tokens_restored += keep
        log.debug("slot %d: restored %d prompt tokens from the host prompt cache", slot.id, keep)
        return keep

    def _save(self, slot: Slot) -> bool:
        """Put the slot's conversation into the host cache unless an entry holds it already; True if
        stored now. A slot unchanged since its entry was found is not looked up again: idle slots are
        offered at every request start, and a lookup compares against every entry."""
        if self.host is None or not slot.cache:
            return False
        if slot.in_host is not None:
            entry, n = slot.in_host
            if n == len(slot.cache) and not entry.dropped:
                self.host.touch(entry)
                return False
        entry, new = self.host.save(self.model.ctx, slot.id, slot.cache, slot.lora)
        slot.in_host = (entry, len(slot.cache)) if entry is not None else None
        return new
