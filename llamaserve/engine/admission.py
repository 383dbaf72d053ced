"""Which tasks this engine refuses before they run: a kind of task the server does not serve (text
generation in embedding mode, embeddings without it, reranking without a rank-pooling model), unknown
adapter ids, and embedding inputs that cannot be decoded whole."""

from __future__ import annotations

from llamaserve.config import Config
from llamaserve.engine.model import POOLING_IDS, Model
from llamaserve.engine.types import COMPLETION, EMBEDDING, RERANK, TASK_KINDS, Task
from llamaserve.errors import ExceedContextSize, InvalidRequest, NotSupported, ServerError

EMBEDDING_MODE_MESSAGE = (
    "This server runs in embedding mode (--embedding): it serves /embedding, /v1/embeddings and /rerank, "
    "not text generation"
)


def refusal(config: Config, model: Model, task: Task) -> ServerError | None:
    """The error the engine answers `task` with before it runs (None: it may run). Reads only what is
    fixed once the model is loaded."""
    if task.kind not in TASK_KINDS:
        return InvalidRequest(f"unknown task kind {task.kind!r}")
    if task.kind == COMPLETION:
        if config.embedding_mode:
            return NotSupported(EMBEDDING_MODE_MESSAGE)
        if not model.has_memory:
            return NotSupported("This model cannot generate text: it is an encoder-only (embedding) model. "
                                "Start the server with `--embedding`")
        if task.lora:
            try:
                model.lora.check_ids(task.lora)
            except InvalidRequest as exc:
                return exc
        return None
    rank = model.pooling == POOLING_IDS["rank"]
    if task.kind == RERANK and not (config.embedding_mode and rank):
        return NotSupported("This server does not support reranking. Start it with `--reranking`")
    if task.kind == EMBEDDING:
        if not config.embedding_mode:
            return NotSupported("This server does not support embeddings. Start it with `--embeddings`")
        if rank:
            return NotSupported("This server runs a reranker (pooling 'rank'): use /rerank for scores; "
                                "embeddings need another pooling type (--pooling)")
    n = len(task.prompt)
    if n == 0:
        return InvalidRequest("Input content cannot be empty")
    if task.media and not model.has_memory:
        # its text and media are decoded in turn into one sequence, which needs a KV cache
        return NotSupported("This model cannot embed images or audio: it has no KV cache (encoder-only)")
    # A whole input is decoded in one ubatch (see model.embedding_batch_size).
    if n > model.n_ubatch:
        return InvalidRequest(f"input ({n} tokens) is too large to process. increase the physical batch size "
                              f"(current batch size: {model.n_ubatch})")
    if n > model.n_ctx_slot:
        return ExceedContextSize(n, model.n_ctx_slot)
    return None
