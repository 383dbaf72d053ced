"""The /slots routes' side of the native format: a slot's state as GET /slots shows it, and the body and
file-name rule of POST /slots/{id_slot}?action=save|restore|erase."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, StrictStr

from llamaserve.engine.types import SlotState
from llamaserve.protocol.native import generation_settings


def slot_json(s: SlotState, model_alias: str) -> dict[str, Any]:
    """One slot in GET /slots, llama-server's shape: what its task asked for and how far it got, or
    how many tokens an idle slot keeps cached."""
    task = s.task
    entry: dict[str, Any] = {"id": s.id, "n_ctx": s.n_ctx, "speculative": s.speculative, "is_processing": task is not None}
    if task is not None:
        entry.update({
            "id_task": task.id,
            "n_prompt_tokens": s.n_prompt,
            "n_prompt_tokens_cache": s.n_cached,
            "params": generation_settings(task, model_alias),
            "next_token": [{
                "has_next_token": True,
                "has_new_line": s.has_new_line,
                "n_remain": task.n_predict - s.n_decoded if task.n_predict >= 0 else -1,
                "n_decoded": s.n_decoded,
            }],
        })
    # llamaserve's own for a busy slot too: the tokens in its KV sequence, and how many of them are a
    # prefix attached from another slot's cells (held once for both in a unified KV cache)
    entry["n_cached_tokens"] = s.n_past
    entry["n_shared_tokens"] = s.n_shared
    # llamaserve's own: what the task drafted so far and the model accepted (speculative decoding)
    entry["n_draft_tokens"] = s.n_draft
    entry["n_draft_accepted"] = s.n_draft_accepted
    return entry


class SlotActionRequest(BaseModel):
    """The POST /slots/{id_slot}?action=save|restore body (erase reads none)."""

    model_config = ConfigDict(extra="allow")

    filename: StrictStr | None = None


# Characters llama-server refuses in slot file names (fs_validate_filename): path separators, characters
# Windows reserves, C0/C1 controls, and look-alikes of '.', '/' and '\'.
_FORBIDDEN_IN_FILENAME = frozenset('/\\:*?"<>|\x7f\ufffd\ufeff\uff0e\u2215\u2216') | {chr(c) for c in range(0x20)} \
    | {chr(c) for c in range(0x80, 0xA0)}


def valid_slot_filename(name: str) -> bool:
    """A plain file name inside --slot-save-path: no directories, no "..", nothing a file system rewrites."""
    if not name or len(name.encode("utf-8", "surrogatepass")) > 255:
        return False
    if any(c in _FORBIDDEN_IN_FILENAME or "\ud800" <= c <= "\udfff" for c in name):
        return False
    if name[0] == " " or name[-1] in " .":  # Windows strips these, giving another name
        return False
    return ".." not in name and name != "."
