"""Reading embeddings and rerank scores out of a decoded context, and normalising them.

libllama keeps one pooled vector per sequence (llama_get_embeddings_seq) or, with pooling
"none", one vector per output token (llama_get_embeddings_ith). Both are copied out at
once: the next llama_decode overwrites them.
"""

from __future__ import annotations

import llama_cpp.llama_cpp as ll
import numpy as np

from llamaserve.engine.model import POOLING_IDS
from llamaserve.engine.types import RERANK, Result
from llamaserve.errors import ServerError


def normalize(vec: np.ndarray, mode: int) -> np.ndarray:
    """llama.cpp's embd_normalize: -1 none, 0 max-abs scaled to int16 range, 1 taxicab, 2 euclidean, >2 p-norm."""
    x = vec.astype(np.float64)
    if mode < 0:
        return vec
    if mode == 0:
        norm = np.abs(x).max(initial=0.0) / 32760.0
    elif mode == 2:
        norm = np.sqrt(np.dot(x, x))
    else:
        norm = np.power(np.power(np.abs(x), mode).sum(), 1.0 / mode)
    return (x * (1.0 / norm) if norm > 0 else np.zeros_like(x)).astype(np.float32)


def _row(ptr, n: int) -> np.ndarray:
    return np.ctypeslib.as_array(ptr, shape=(n,)).copy()


def pooled(ctx, seq: int, n: int) -> np.ndarray:
    ptr = ll.llama_get_embeddings_seq(ctx, seq)
    if not ptr:
        raise ServerError(f"failed to get the embedding of sequence {seq}")
    return _row(ptr, n)


def per_token(ctx, first: int, count: int, n: int) -> np.ndarray:
    """Rows first .. first+count-1 of the batch (pooling "none")."""
    out = np.empty((count, n), dtype=np.float32)
    for k in range(count):
        ptr = ll.llama_get_embeddings_ith(ctx, first + k)
        if not ptr:
            raise ServerError(f"failed to get the embedding of batch token {first + k}")
        out[k] = np.ctypeslib.as_array(ptr, shape=(n,))
    return out


def result(model, slot, first: int, count: int | None = None) -> Result:
    """The final Result of an embedding or rerank task whose input was decoded at batch position `first`
    (pooling "none": its `count` rows, all of its tokens unless told)."""
    task = slot.task
    result = Result(task, done=True, n_prompt=slot.n_prompt, id_slot=slot.id)
    if task.kind == RERANK:
        result.score = float(pooled(model.ctx, slot.id, max(1, model.n_cls_out))[0])
    elif model.pooling == POOLING_IDS["none"]:
        # one unnormalised vector per token, as llama-server returns them
        result.embedding = per_token(model.ctx, first, slot.n_prompt if count is None else count, model.n_embd_out).tolist()
    else:
        vec = pooled(model.ctx, slot.id, model.n_embd_out)
        result.embedding = [normalize(vec, task.embd_normalize).tolist()]
    return result
