"""The flag table: every option of llama-server's command line (and llamaserve's own few), where its
value goes in Config, and for the options that cannot act here, why.

The spellings, value counts and LLAMA_ARG_* names follow the llama-server that llama-cpp-python 0.3.36
vendors; tests/unit/test_flag_table.py holds this table against the list taken from its common/arg.cpp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from llamaserve.cli import values as v
from llamaserve.config import KV_CACHE_TYPES, SPEC_TYPES


@dataclass(frozen=True)
class Flag:
    names: tuple[str, ...]
    dest: str  # attribute of Config, "<group>.<attr>" (GROUPS), or "" (no effect: the value is kept in Config.ignored)
    help: str
    parse: Callable[..., Any] | None = None  # None = switch; with pair=True it takes two strings
    env: str | None = None
    negatives: tuple[str, ...] = ()  # for switches: the names that turn it off
    metavar: str = "N"
    repeatable: bool = False  # may be given several times; parse returns a list, the lists are joined
    unparse: Callable[[Any], list[str]] | None = None  # value -> argv tokens, where the default spelling would not do
    pair: bool = False  # takes two values (START END)
    noop: str = ""  # why it has no effect in this engine: accepted, announced at start-up, shown in /props
    needs: str = ""  # a capability not built yet: start-up stops with this line when a value asks for it
    asks: Callable[[Any], bool] | None = None  # with needs: the values that ask for it (None = every value)
    gpu: Callable[[Any], bool] | None = None  # values that act only where libllama has a GPU backend
    command: str = ""  # an informational command that runs instead of the server (help, version, ...)
    removed: str = ""  # llama.cpp removed the option: what to use instead
    expands: tuple[str, ...] = ()  # a preset: it stands for these options

    @property
    def long_name(self) -> str:
        return next((n for n in self.names if n.startswith("--")), self.names[0])

    @property
    def n_values(self) -> int:
        return 0 if self.parse is None else 2 if self.pair else 1

    @property
    def key(self) -> str:
        """Where the value is kept: its Config attribute, or ignored.<long name> for an option without effect."""
        return self.dest or f"ignored.{self.long_name}"


# Config attributes that are dataclasses of their own: a Flag.dest "sampling.top_k" is config.sampling.top_k.
GROUPS = ("sampling.", "spec.")


# The capabilities that have issues of their own; their options parse, and until they land a value
# that asks for one stops start-up with this line.
_FIM = ("--port", "8012", "-ub", "1024", "-b", "1024", "-c", "0", "--cache-reuse", "256")
_GPT_OSS = ("--port", "8013", "-ub", "2048", "-b", "32768", "-np", "2", "-c", "262144", "--temp", "1.0", "--top-p", "1.0",
            "--top-k", "0", "--min-p", "0.01", "--jinja")
_QWEN_DRAFT = ("-hfd", "ggml-org/Qwen2.5-Coder-0.5B-Q8_0-GGUF:Q8_0")
# llama-server's preset models: each stands for these options, read where it stands on the command line
PRESETS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("--embd-gemma-default", "EmbeddingGemma 300M", ("-hf", "ggml-org/embeddinggemma-300M-qat-q4_0-GGUF", "-hff", "embeddinggemma-300M-qat-Q4_0.gguf", "--port", "8011", "-ub", "2048", "-b", "2048", "-np", "32", "-c", "65536", "--embedding")),
    ("--fim-qwen-1.5b-default", "Qwen 2.5 Coder 1.5B", ("-hf", "ggml-org/Qwen2.5-Coder-1.5B-Q8_0-GGUF", "-hff", "qwen2.5-coder-1.5b-q8_0.gguf", *_FIM)),
    ("--fim-qwen-3b-default", "Qwen 2.5 Coder 3B", ("-hf", "ggml-org/Qwen2.5-Coder-3B-Q8_0-GGUF", "-hff", "qwen2.5-coder-3b-q8_0.gguf", *_FIM)),
    ("--fim-qwen-7b-default", "Qwen 2.5 Coder 7B", ("-hf", "ggml-org/Qwen2.5-Coder-7B-Q8_0-GGUF", "-hff", "qwen2.5-coder-7b-q8_0.gguf", *_FIM)),
    ("--fim-qwen-7b-spec", "Qwen 2.5 Coder 7B with the 0.5B as its draft", ("-hf", "ggml-org/Qwen2.5-Coder-7B-Q8_0-GGUF", "-hff", "qwen2.5-coder-7b-q8_0.gguf", *_QWEN_DRAFT, *_FIM)),
    ("--fim-qwen-14b-spec", "Qwen 2.5 Coder 14B with the 0.5B as its draft", ("-hf", "ggml-org/Qwen2.5-Coder-14B-Q8_0-GGUF", "-hff", "qwen2.5-coder-14b-q8_0.gguf", *_QWEN_DRAFT, *_FIM)),
    ("--fim-qwen-30b-default", "Qwen 3 Coder 30B A3B", ("-hf", "ggml-org/Qwen3-Coder-30B-A3B-Instruct-Q8_0-GGUF", "-hff", "qwen3-coder-30b-a3b-instruct-q8_0.gguf", *_FIM)),
    ("--gpt-oss-20b-default", "gpt-oss-20b", ("-hf", "ggml-org/gpt-oss-20b-GGUF", "-hff", "gpt-oss-20b-mxfp4.gguf", *_GPT_OSS)),
    ("--gpt-oss-120b-default", "gpt-oss-120b", ("-hf", "ggml-org/gpt-oss-120b-GGUF", *_GPT_OSS)),
    ("--vision-gemma-4b-default", "Gemma 3 4B QAT", ("-hf", "ggml-org/gemma-3-4b-it-qat-GGUF", "--port", "8014", "-c", "0", "--jinja")),
    ("--vision-gemma-12b-default", "Gemma 3 12B QAT", ("-hf", "ggml-org/gemma-3-12b-it-qat-GGUF", "--port", "8014", "-c", "0", "--jinja")),
)
DOCKER = "downloading models from Docker Hub is not implemented: use -hf <user>/<repo>[:quant] or a local GGUF with -m"

# speculative decoding options that do not act here (see engine/speculative.py for the types built)
MAP_NOOP = "has no effect: the ngram-map-k and ngram-map-k4v types are not built (--spec-type names them, start-up says so)"
CACHE_NOOP = "has no effect: the ngram-cache type is not built (--spec-type names it, start-up says so)"
MIN_HITS_NOOP = "has no effect: ngram-simple drafts from the latest match, as llama-server's, which reads no hit count either"
P_SPLIT_NOOP = "has no effect: no speculative decoding type reads it, in llama-server either"
BACKEND_SAMPLING_NOOP = "has no effect: the draft token is picked from the draft model's logits on the CPU, not by a backend sampler"
MMDEV_NOOP = "has no effect: the projector runs on the GPU with --mmproj-offload (the first one libmtmd picks), else on the CPU"
VIDEO_NOOP = "has no effect: video input is not implemented (images and audio are)"
NO_GPU = "has no effect: this libllama build has no GPU backend, everything runs on the CPU"
POLL_NOOP = ("has no effect: this ggml build runs its compute threads with OpenMP, whose threads wait as "
             "OMP_WAIT_POLICY says; the polling level is read only by ggml's own workers")
FIT_NOOP = ("has no effect: fitting -ngl and -c to free device memory is a llama.cpp common-library step that "
            "llamaserve does not run; set -ngl and -c yourself")


def _not(value: Any) -> bool:
    return not value


def _positive(value: Any) -> bool:
    return value > 0


def _spec_type(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    for item in items:
        if item not in SPEC_TYPES:
            raise v.BadValue(f"unknown speculative decoding type '{item}' (one of {', '.join(SPEC_TYPES)})")
    return items


def _dry_breakers(text: str) -> list[str]:
    return [] if text == "none" else [text]  # "none": no breakers at all


def _rope_scale(text: str) -> float:
    value = v.number(text)
    if value <= 0:
        raise v.BadValue(f"must be > 0, got {text}")
    return 1.0 / value



_CACHE_TYPES = f"({', '.join(KV_CACHE_TYPES)})"

FLAGS: tuple[Flag, ...] = (
    # --- informational commands ---
    Flag(("-h", "--help", "--usage"), "", "print usage and exit", command="help"),
    Flag(("--version",), "", "print the version of llamaserve and of the llama.cpp build it runs on, and exit", command="version"),
    Flag(("--completion-bash",), "", "print a bash completion script for llamaserve and exit", command="completion_bash"),
    Flag(("--list-devices",), "", "print the devices libllama can offload to, and exit", command="list_devices"),
    Flag(("-cl", "--cache-list"), "", "list the models in the Hugging Face cache (LLAMA_CACHE, HF_HUB_CACHE, ...) and exit", command="cache_list"),

    # --- model ---
    Flag(("-m", "--model"), "model", "model path (default: none = router mode, serving the bundled SmolLM2-135M-Instruct and the --models-dir models)", str, "LLAMA_ARG_MODEL", metavar="FNAME"),
    Flag(("-a", "--alias"), "alias", "model names for the API, comma-separated; the first in sorted order is reported (default: model file name)", str, "LLAMA_ARG_ALIAS", metavar="STRING"),
    Flag(("--tags",), "tags", "model tags, comma-separated; informational, shown in /models and /v1/models (default: none)", v.key_list, "LLAMA_ARG_TAGS", metavar="STRING"),
    Flag(("-mu", "--model-url"), "model_url", "download the model from this URL into llama.cpp's cache (LLAMA_CACHE, else ~/.cache/llama.cpp); with -m, to that path", str, "LLAMA_ARG_MODEL_URL", metavar="MODEL_URL"),
    Flag(("-dr", "--docker-repo"), "", "download the model from a Docker Hub repository", str, "LLAMA_ARG_DOCKER_REPO", metavar="[<repo>/]<model>[:quant]", needs=DOCKER),
    Flag(("-hf", "-hfr", "--hf-repo"), "hf_repo", "Hugging Face model repository, <user>/<model>[:quant]: the quantization (case-insensitive; default Q4_K_M, then Q8_0, then the first model file) picks the file, split GGUFs included; the projector comes with it unless --no-mmproj; kept in the Hugging Face cache", str, "LLAMA_ARG_HF_REPO", metavar="<user>/<model>[:quant]"),
    Flag(("-hff", "--hf-file"), "hf_file", "the file of the --hf-repo repository to load, overriding its quantization", str, "LLAMA_ARG_HF_FILE", metavar="FILE"),
    Flag(("-hft", "--hf-token"), "hf_token", "Hugging Face access token (default: HF_TOKEN)", str, "HF_TOKEN", metavar="TOKEN"),
    *(Flag((name,), "", f"serve {what} with llama-server's settings for it: {' '.join(tokens)} (downloads it with -hf)",
           expands=tokens) for name, what, tokens in PRESETS),
    Flag(("--lora",), "lora", "LoRA adapter file, applied at scale 1; repeatable or comma-separated (default: none)", v.lora_files, None, metavar="FNAME", repeatable=True, unparse=v.lora_argv),
    Flag(("--lora-scaled",), "lora", "LoRA adapter file with its scale, FNAME:SCALE; repeatable or comma-separated (default: none)", v.lora_scaled, None, metavar="FNAME:SCALE,...", repeatable=True, unparse=v.lora_argv),
    Flag(("--lora-init-without-apply",), "lora_init_without_apply", "load the LoRA adapters at scale 0; set their scales later with POST /lora-adapters (default: disabled)"),
    Flag(("--control-vector",), "control_vectors", "control vector file, applied at scale 1; repeatable or comma-separated (default: none)", v.lora_files, None, metavar="FNAME", repeatable=True, unparse=v.scaled_argv("--control-vector-scaled")),
    Flag(("--control-vector-scaled",), "control_vectors", "control vector file with its scale, FNAME:SCALE; repeatable or comma-separated", v.scaled_files("control-vector-scaled"), None, metavar="FNAME:SCALE,...", repeatable=True, unparse=v.scaled_argv("--control-vector-scaled")),
    Flag(("--control-vector-layer-range",), "control_vector_layers", "first and last layer (inclusive) the control vectors apply to (default: all)", v.layer_range, None, metavar="START END", pair=True),
    Flag(("--override-kv",), "kv_overrides", "override model metadata: KEY=TYPE:VALUE, TYPE int, float, bool or str; repeatable or comma-separated", v.override_kv, None, metavar="KEY=TYPE:VALUE,...", repeatable=True),
    Flag(("--check-tensors",), "check_tensors", "check the tensor data for invalid values while loading (default: disabled)"),
    Flag(("-lm", "--load-mode"), "load_mode", "how the model is read: auto (mmap where the devices allow it), none, mmap, mlock, mmap+mlock, dio (default: auto)", v.choice("auto", "none", "mmap", "mlock", "mmap+mlock", "dio"), "LLAMA_ARG_LOAD_MODE", metavar="MODE"),
    Flag(("-lzm", "--lazy-mode"), "lazy_mode", "read tensors the architecture marks (per-layer embeddings) on demand: on, auto (only above 4 GiB), off (default: auto)", v.choice("on", "auto", "off"), "LLAMA_ARG_LAZY_MODE", metavar="MODE"),
    Flag(("--mmap",), "use_mmap", "memory-map the model; --no-mmap reads it into memory (older llama-server spelling of -lm; default: enabled)", None, "LLAMA_ARG_MMAP", ("--no-mmap",)),
    Flag(("--mlock",), "use_mlock", "keep the model in RAM (older llama-server spelling of -lm mlock; default: disabled)", None, "LLAMA_ARG_MLOCK"),
    Flag(("--numa",), "numa", "NUMA optimisations: distribute, isolate or numactl (default: off)", v.choice("distribute", "isolate", "numactl"), "LLAMA_ARG_NUMA", metavar="TYPE"),
    Flag(("--repack",), "repack", "weight repacking / extra CPU buffer types (default: enabled unless the CPU advertises AMX)", None, "LLAMA_ARG_REPACK", ("-nr", "--no-repack")),
    Flag(("--no-host",), "no_host", "bypass the host buffer so that extra buffer types can be used (default: disabled)", None, "LLAMA_ARG_NO_HOST", gpu=bool),

    # --- devices and offload ---
    Flag(("-ngl", "--gpu-layers", "--n-gpu-layers"), "n_gpu_layers", "layers to offload to the GPU: N, 'auto' or 'all' (default: auto)", v.gpu_layers, "LLAMA_ARG_N_GPU_LAYERS", gpu=_positive),
    Flag(("-dev", "--device"), "devices", "comma-separated devices to offload to, 'none' for none; see --list-devices (default: all)", v.key_list, "LLAMA_ARG_DEVICE", metavar="<dev1,dev2,..>", gpu=bool),
    Flag(("-sm", "--split-mode"), "split_mode", "how the model is split over several GPUs: none, layer, row, tensor (default: layer)", v.choice("none", "layer", "row", "tensor"), "LLAMA_ARG_SPLIT_MODE", metavar="{none,layer,row,tensor}", gpu=lambda value: value != "layer"),
    Flag(("-ts", "--tensor-split"), "tensor_split", "fraction of the model per GPU, e.g. 3,1 (default: by free memory)", v.number_list, "LLAMA_ARG_TENSOR_SPLIT", metavar="N0,N1,N2,...", gpu=bool),
    Flag(("-mg", "--main-gpu"), "main_gpu", "the GPU for the whole model with -sm none, or for intermediate results with -sm row (default: 0)", v.nonneg_int, "LLAMA_ARG_MAIN_GPU", metavar="INDEX", gpu=_positive),
    Flag(("-ot", "--override-tensor"), "tensor_overrides", "buffer type of the tensors whose names match: PATTERN=BUFFER_TYPE,...; see --list-devices", v.override_tensor, "LLAMA_ARG_OVERRIDE_TENSOR", metavar="<tensor name pattern>=<buffer type>,...", repeatable=True, gpu=bool),
    Flag(("-cmoe", "--cpu-moe"), "cpu_moe", "keep every Mixture-of-Experts weight on the CPU", None, "LLAMA_ARG_CPU_MOE", gpu=bool),
    Flag(("-ncmoe", "--n-cpu-moe"), "n_cpu_moe", "keep the Mixture-of-Experts weights of the first N layers on the CPU", v.nonneg_int, "LLAMA_ARG_N_CPU_MOE", gpu=_positive),
    Flag(("-ncffn", "--n-cpu-ffn"), "n_cpu_ffn", "keep the dense feed-forward weights of the first N layers on the CPU", v.nonneg_int, "LLAMA_ARG_N_CPU_FFN", gpu=_positive),
    Flag(("-kvo", "--kv-offload"), "kv_offload", "offload the KV cache to the GPU; -nkvo keeps it on the CPU (default: enabled)", None, "LLAMA_ARG_KV_OFFLOAD", ("-nkvo", "--no-kv-offload"), gpu=_not),
    Flag(("--op-offload",), "op_offload", "offload host-side tensor operations to the device (default: enabled)", None, None, ("--no-op-offload",), gpu=_not),
    Flag(("-fit", "--fit"), "fit", "fit unset parameters to free device memory: on or off (default: on)", v.on_off, "LLAMA_ARG_FIT", metavar="[on|off]", noop=FIT_NOOP),
    Flag(("-fitt", "--fit-target"), "fit_target", "MiB of memory to leave free per device for --fit", v.int_list, "LLAMA_ARG_FIT_TARGET", metavar="MiB0,MiB1,MiB2,...", noop=FIT_NOOP),
    Flag(("-fitc", "--fit-ctx"), "fit_ctx", "smallest context --fit may choose (default: 4096)", v.nonneg_int, "LLAMA_ARG_FIT_CTX", noop=FIT_NOOP),
    Flag(("--rpc",), "rpc_servers", "comma-separated ggml RPC servers (host:port, from `llamaserve rpc-server` or llama.cpp's rpc-server) whose devices join the model's", v.endpoints, "LLAMA_ARG_RPC", metavar="SERVERS"),

    # --- threads ---
    Flag(("-t", "--threads"), "n_threads", "CPU threads for generation (default: -1 = all cores)", v.integer, "LLAMA_ARG_THREADS"),
    Flag(("-tb", "--threads-batch"), "n_threads_batch", "CPU threads for batch and prompt processing (default: same as --threads)", v.integer, "LLAMA_ARG_THREADS_BATCH"),
    Flag(("-C", "--cpu-mask"), "cpu_mask", "CPU affinity of the generation threads, a hex mask (default: any CPU)", v.cpu_mask, None, metavar="M"),
    Flag(("-Cr", "--cpu-range"), "cpu_range", "CPU affinity of the generation threads, a range lo-hi", v.cpu_range, None, metavar="lo-hi"),
    Flag(("--cpu-strict",), "cpu_strict", "pin each generation thread to one CPU of its mask: 0 or 1 (default: 0)", v.boolean, None, metavar="<0|1>"),
    Flag(("--prio",), "priority", "scheduling priority of the generation threads: -1 low, 0 normal, 1 medium, 2 high, 3 realtime (default: 0)", v.priority, None),
    Flag(("--poll",), "poll", "how much the threads spin while waiting for work, 0 (sleep) to 100 (default: 50)", v.poll, None, metavar="<0...100>", noop=POLL_NOOP),
    Flag(("-Cb", "--cpu-mask-batch"), "cpu_mask_batch", "CPU affinity of the batch threads, a hex mask (default: as --cpu-mask)", v.cpu_mask, None, metavar="M"),
    Flag(("-Crb", "--cpu-range-batch"), "cpu_range_batch", "CPU affinity of the batch threads, a range lo-hi", v.cpu_range, None, metavar="lo-hi"),
    Flag(("--cpu-strict-batch",), "cpu_strict_batch", "pin each batch thread to one CPU: 0 or 1 (default: as --cpu-strict)", v.boolean, None, metavar="<0|1>"),
    Flag(("--prio-batch",), "priority_batch", "scheduling priority of the batch threads (default: as --prio)", v.priority, None),
    Flag(("--poll-batch",), "poll_batch", "polling level of the batch threads (default: as --poll)", v.poll, None, metavar="<0|1>", noop=POLL_NOOP),

    # --- context and batching ---
    Flag(("-c", "--ctx-size"), "n_ctx", "size of the prompt context (default: 0 = from model)", v.nonneg_int, "LLAMA_ARG_CTX_SIZE"),
    Flag(("-np", "--parallel"), "n_parallel", "number of server slots (default: -1 = auto: 4 with a unified KV cache)", v.parallel, "LLAMA_ARG_N_PARALLEL"),
    Flag(("-b", "--batch-size"), "n_batch", "logical maximum batch size (default: 2048)", v.positive_int, "LLAMA_ARG_BATCH"),
    Flag(("-ub", "--ubatch-size"), "n_ubatch", "physical maximum batch size (default: 512)", v.positive_int, "LLAMA_ARG_UBATCH"),
    Flag(("--prompt-chunk",), "prompt_chunk", "prompt tokens per step while other requests are in flight (default: 0 = auto: 64 on CPU, the batch size with GPU offload)", v.nonneg_int, None),
    Flag(("-cb", "--cont-batching"), "cont_batching", "continuous batching (default: enabled)", None, "LLAMA_ARG_CONT_BATCHING", ("-nocb", "--no-cont-batching")),
    Flag(("-kvu", "--kv-unified"), "kv_unified", "one KV buffer shared by all slots (default: enabled when -np is auto)", None, "LLAMA_ARG_KV_UNIFIED", ("-no-kvu", "--no-kv-unified")),
    Flag(("--kv-unified-per-slot",), "kv_unified_per_slot", "context limit of each slot; without -c the KV cache is sized to -np times it (default: unset)", v.positive_int, "LLAMA_ARG_KV_UNIFIED_PER_SLOT"),
    Flag(("-fa", "--flash-attn"), "flash_attn", "flash attention: on, off or auto (default: auto)", v.on_off_auto, "LLAMA_ARG_FLASH_ATTN", metavar="[on|off|auto]"),
    Flag(("-ctk", "--cache-type-k"), "cache_type_k", f"KV cache type for K {_CACHE_TYPES} (default: f16)", v.cache_type, "LLAMA_ARG_CACHE_TYPE_K", metavar="TYPE"),
    Flag(("-ctv", "--cache-type-v"), "cache_type_v", f"KV cache type for V {_CACHE_TYPES} (default: f16)", v.cache_type, "LLAMA_ARG_CACHE_TYPE_V", metavar="TYPE"),
    Flag(("--swa-full",), "swa_full", "full-size KV cache for sliding-window attention layers (default: disabled)", None, "LLAMA_ARG_SWA_FULL"),
    Flag(("-dt", "--defrag-thold"), "", "KV cache defragmentation threshold (deprecated in llama.cpp)", v.number, "LLAMA_ARG_DEFRAG_THOLD", noop="has no effect: libllama no longer needs defragmenting (deprecated in llama.cpp too)"),
    Flag(("--context-shift",), "ctx_shift", "shift the context when a generation fills it (default: disabled)", None, "LLAMA_ARG_CONTEXT_SHIFT", ("--no-context-shift",)),
    Flag(("--keep",), "sampling.n_keep", "tokens of the prompt kept on context shift (default: 0, -1 = all)", v.integer, None),
    Flag(("--cache-reuse",), "cache_reuse", "min chunk size reused from the cache via KV shifting (default: 0 = disabled)", v.nonneg_int, "LLAMA_ARG_CACHE_REUSE"),
    Flag(("--cache-prompt",), "sampling.cache_prompt", "server default of the request field cache_prompt (default: enabled)", None, "LLAMA_ARG_CACHE_PROMPT", ("--no-cache-prompt",)),
    Flag(("-sps", "--slot-prompt-similarity"), "slot_prompt_similarity", "how much a prompt must match a slot's cache to use that slot (default: 0.10, 0.0 = disabled)", v.unit_float, None, metavar="SIMILARITY"),
    Flag(("-cram", "--cache-ram"), "cache_ram", "MiB of host memory for the prompt cache (default: 8192, -1 = no limit, 0 = off)", v.int_at_least(-1), "LLAMA_ARG_CACHE_RAM"),
    Flag(("--cache-idle-slots",), "cache_idle_slots", "save idle slots into the host prompt cache when a request starts (default: enabled, needs --cache-ram)", None, "LLAMA_ARG_CACHE_IDLE_SLOTS", ("--no-cache-idle-slots",)),
    Flag(("-ctxcp", "--ctx-checkpoints", "--swa-checkpoints"), "", "context checkpoints per slot for sliding-window and recurrent models", v.nonneg_int, "LLAMA_ARG_CTX_CHECKPOINTS",
         noop="has no effect: context checkpoints are not implemented yet; for sliding-window and recurrent models a changed prompt is evaluated again"),
    Flag(("-cms", "--checkpoint-min-step"), "", "least spacing in tokens between context checkpoints", v.nonneg_int, "LLAMA_ARG_CHECKPOINT_MIN_SPACING_NT",
         noop="has no effect: context checkpoints are not implemented yet"),
    Flag(("--warmup",), "warmup", "decode once at start-up so the first request does not pay for it (default: enabled)", None, None, ("--no-warmup",)),
    Flag(("--perf",), "", "libllama's internal performance counters", None, "LLAMA_ARG_PERF", ("--no-perf",),
         noop="has no effect: llamaserve measures timings itself (in every response and /metrics) and never prints libllama's counters"),
    Flag(("--rope-scaling",), "rope_scaling", "RoPE frequency scaling: none, linear or yarn (default: the model's)", v.choice("none", "linear", "yarn"), "LLAMA_ARG_ROPE_SCALING_TYPE", metavar="{none,linear,yarn}"),
    Flag(("--rope-freq-scale",), "rope_freq_scale", "RoPE frequency scaling factor: the context grows 1/N times (default: the model's)", v.nonneg_float, "LLAMA_ARG_ROPE_FREQ_SCALE"),
    Flag(("--rope-scale",), "rope_freq_scale", "RoPE context scaling factor: the context grows N times (sets --rope-freq-scale 1/N)", _rope_scale, "LLAMA_ARG_ROPE_SCALE"),
    Flag(("--rope-freq-base",), "rope_freq_base", "RoPE base frequency (default: the model's)", v.nonneg_float, "LLAMA_ARG_ROPE_FREQ_BASE"),
    Flag(("--yarn-orig-ctx",), "yarn_orig_ctx", "YaRN: the model's original context size (default: 0 = the model's training context)", v.nonneg_int, "LLAMA_ARG_YARN_ORIG_CTX"),
    Flag(("--yarn-ext-factor",), "yarn_ext_factor", "YaRN extrapolation mix factor (default: -1 = the model's; 0 = full interpolation)", v.number, "LLAMA_ARG_YARN_EXT_FACTOR"),
    Flag(("--yarn-attn-factor",), "yarn_attn_factor", "YaRN magnitude scaling factor (default: -1 = the model's)", v.number, "LLAMA_ARG_YARN_ATTN_FACTOR"),
    Flag(("--yarn-beta-slow",), "yarn_beta_slow", "YaRN high correction dimension, alpha (default: -1 = the model's)", v.number, "LLAMA_ARG_YARN_BETA_SLOW"),
    Flag(("--yarn-beta-fast",), "yarn_beta_fast", "YaRN low correction dimension, beta (default: -1 = the model's)", v.number, "LLAMA_ARG_YARN_BETA_FAST"),

    # --- server-wide sampling defaults (a request's own fields win) ---
    Flag(("-n", "--predict", "--n-predict"), "sampling.n_predict", "default number of tokens to predict (default: -1 = until end of generation)", v.integer, "LLAMA_ARG_N_PREDICT"),
    Flag(("-s", "--seed"), "sampling.seed", "default RNG seed (default: -1 = random)", v.seed, None, metavar="SEED"),
    Flag(("--samplers",), "sampling.samplers", "default sampler order, names separated by ';' (default: penalties;dry;top_n_sigma;top_k;typ_p;top_p;min_p;xtc;temperature)", v.samplers, None, metavar="SAMPLERS"),
    Flag(("--sampler-seq", "--sampling-seq"), "sampling.samplers", "default sampler order as letters (default: edskypmxt)", v.sampler_sequence, None, metavar="SEQUENCE"),
    Flag(("--ignore-eos",), "sampling.ignore_eos", "keep generating past the end-of-generation token (default: disabled)"),
    Flag(("--temp", "--temperature"), "sampling.temperature", "default temperature (default: 0.80)", v.number, "LLAMA_ARG_TEMPERATURE"),
    Flag(("--top-k",), "sampling.top_k", "default top-k sampling (default: 40, 0 = disabled)", v.nonneg_int, "LLAMA_ARG_TOP_K"),
    Flag(("--top-p",), "sampling.top_p", "default top-p sampling (default: 0.95, 1.0 = disabled)", v.unit_float, "LLAMA_ARG_TOP_P"),
    Flag(("--min-p",), "sampling.min_p", "default min-p sampling (default: 0.05, 0.0 = disabled)", v.unit_float, "LLAMA_ARG_MIN_P"),
    Flag(("--top-nsigma", "--top-n-sigma"), "sampling.top_n_sigma", "default top-n-sigma sampling (default: -1 = disabled)", v.number, None),
    Flag(("--xtc-probability",), "sampling.xtc_probability", "default XTC probability (default: 0.0 = disabled)", v.unit_float, None),
    Flag(("--xtc-threshold",), "sampling.xtc_threshold", "default XTC threshold (default: 0.1; above 0.5 disables XTC)", v.unit_float, None),
    Flag(("--typical", "--typical-p"), "sampling.typical_p", "default locally typical sampling p (default: 1.0 = disabled)", v.unit_float, None),
    Flag(("--repeat-last-n",), "sampling.repeat_last_n", "default number of last tokens the penalties look at (default: 64, 0 = disabled, -1 = context size)", v.int_at_least(-1), None),
    Flag(("--repeat-penalty",), "sampling.repeat_penalty", "default repeat penalty (default: 1.0 = disabled)", v.nonneg_float, "LLAMA_ARG_REPEAT_PENALTY"),
    Flag(("--presence-penalty",), "sampling.presence_penalty", "default presence penalty (default: 0.0 = disabled)", v.number, "LLAMA_ARG_PRESENCE_PENALTY"),
    Flag(("--frequency-penalty",), "sampling.frequency_penalty", "default frequency penalty (default: 0.0 = disabled)", v.number, "LLAMA_ARG_FREQUENCY_PENALTY"),
    Flag(("--dry-multiplier",), "sampling.dry_multiplier", "default DRY multiplier (default: 0.0 = disabled)", v.nonneg_float, None),
    Flag(("--dry-base",), "sampling.dry_base", "default DRY base (default: 1.75)", v.nonneg_float, None),
    Flag(("--dry-allowed-length",), "sampling.dry_allowed_length", "default DRY allowed length (default: 2)", v.nonneg_int, None),
    Flag(("--dry-penalty-last-n",), "sampling.dry_penalty_last_n", "default DRY window (default: -1 = context size, 0 = disabled)", v.int_at_least(-1), None),
    Flag(("--dry-sequence-breaker",), "sampling.dry_sequence_breakers", "a DRY sequence breaker; repeatable; the first one replaces the defaults ('none': no breakers)", _dry_breakers, None, metavar="STRING", repeatable=True,
         unparse=lambda breakers: [t for b in breakers or ["none"] for t in ("--dry-sequence-breaker", b)]),
    Flag(("--adaptive-target",), "sampling.adaptive_target", "default adaptive-p target probability, 0.0 to 1.0, used when adaptive_p is among the samplers (default: -1.0 = disabled)", v.number, None),
    Flag(("--adaptive-decay",), "sampling.adaptive_decay", "default adaptive-p decay, 0.0 to 0.99 (default: 0.9)", v.unit_float, None),
    Flag(("--dynatemp-range",), "sampling.dynatemp_range", "default dynamic temperature range (default: 0.0 = disabled)", v.nonneg_float, None),
    Flag(("--dynatemp-exp",), "sampling.dynatemp_exponent", "default dynamic temperature exponent (default: 1.0)", v.number, None),
    Flag(("--mirostat",), "sampling.mirostat", "default Mirostat mode: 0 off, 1 Mirostat, 2 Mirostat 2.0 (default: 0)", v.int_between(0, 2), None),
    Flag(("--mirostat-lr",), "sampling.mirostat_eta", "default Mirostat learning rate, eta (default: 0.1)", v.nonneg_float, None),
    Flag(("--mirostat-ent",), "sampling.mirostat_tau", "default Mirostat target entropy, tau (default: 5.0)", v.nonneg_float, None),
    Flag(("-l", "--logit-bias"), "sampling.logit_bias", "default logit bias of a token: TOKEN_ID(+/-)BIAS, e.g. 15043+1 or 2-inf; repeatable", v.logit_bias, None, metavar="TOKEN_ID(+/-)BIAS", repeatable=True),
    Flag(("--grammar",), "sampling.grammar", "default GBNF grammar for requests that bring no constraint (default: none)", str, None, metavar="GRAMMAR"),
    Flag(("--grammar-file",), "sampling.grammar", "read the default grammar from a file", v.text_file("grammar"), None, metavar="FNAME"),
    Flag(("-j", "--json-schema"), "sampling.json_schema", "default JSON schema for requests that bring no constraint, e.g. '{\"type\": \"object\"}'", v.json_schema, None, metavar="SCHEMA"),
    Flag(("-jf", "--json-schema-file"), "sampling.json_schema", "read the default JSON schema from a file", v.json_schema_file, None, metavar="FILE"),
    Flag(("-bs", "--backend-sampling"), "", "sample on the compute backend (experimental in llama.cpp)", None, "LLAMA_ARG_BACKEND_SAMPLING",
         noop="has no effect: llamaserve samples with libllama's CPU sampler chains (a request's backend_sampling field is accepted and ignored likewise)"),
    Flag(("-r", "--reverse-prompt"), "sampling.stop", "default stop string for requests that give none; repeatable (default: none)", v.listed, None, metavar="PROMPT", repeatable=True),
    Flag(("-e", "--escape"), "escape", "read \\n, \\r, \\t, \\', \\\", \\\\ in -r and --dry-sequence-breaker as escapes (default: enabled)", None, None, ("--no-escape",)),
    Flag(("-sp", "--special"), "special", "write special tokens into the output text (default: disabled)"),

    # --- chat ---
    Flag(("--jinja",), "use_jinja", "render chat templates with jinja (default: enabled)", None, "LLAMA_ARG_JINJA", ("--no-jinja",)),
    Flag(("--chat-template",), "chat_template", "chat template: a built-in name or jinja source (default: the model's)", str, "LLAMA_ARG_CHAT_TEMPLATE", metavar="JINJA_TEMPLATE"),
    Flag(("--chat-template-file",), "chat_template", "read the chat template from a file", v.text_file("chat template"), "LLAMA_ARG_CHAT_TEMPLATE_FILE", metavar="JINJA_TEMPLATE_FILE"),
    Flag(("--chat-template-kwargs",), "chat_template_kwargs", "JSON object of extra chat template variables, e.g. '{\"enable_thinking\": false}'", v.json_object, "LLAMA_ARG_CHAT_TEMPLATE_KWARGS", metavar="STRING"),
    Flag(("--skip-chat-parsing",), "skip_chat_parsing", "treat the output as plain content: no tool-call or reasoning parsing (default: disabled)", None, "LLAMA_ARG_SKIP_CHAT_PARSING", ("--no-skip-chat-parsing",)),
    Flag(("--prefill-assistant",), "prefill_assistant", "continue a final assistant message instead of closing it (default: enabled)", None, "LLAMA_ARG_PREFILL_ASSISTANT", ("--no-prefill-assistant",)),
    Flag(("--reasoning-format",), "reasoning_format", "where thoughts go: none (left in content), auto/deepseek (reasoning_content), deepseek-legacy (default: auto)", v.reasoning_format, "LLAMA_ARG_THINK", metavar="FORMAT"),
    Flag(("-rea", "--reasoning"), "reasoning", "thinking: on, off, or auto (as the template does; default: auto)", v.on_off_auto, "LLAMA_ARG_REASONING", metavar="[on|off|auto]"),
    Flag(("--reasoning-effort",), "reasoning_effort", "reasoning effort handed to the chat template, e.g. low, medium, high ('default' = the template's; default: default)", str, "LLAMA_ARG_REASONING_EFFORT", metavar="LEVEL"),
    Flag(("--reasoning-budget",), "reasoning_budget", "thinking budget in tokens: -1 = unrestricted, 0 = thinking off, N = close the thoughts after N tokens (default: -1)", v.reasoning_budget, "LLAMA_ARG_THINK_BUDGET"),
    Flag(("--reasoning-budget-message",), "reasoning_budget_message", "text inserted before the closing think marker when the budget runs out (default: none)", str, "LLAMA_ARG_THINK_BUDGET_MESSAGE", metavar="MESSAGE"),
    Flag(("--reasoning-preserve",), "reasoning_preserve", "keep the reasoning of every assistant turn in the prompt, not only the last one (default: as the template does)", None, "LLAMA_ARG_REASONING_PRESERVE", ("--no-reasoning-preserve",)),

    # --- embeddings, reranking, infill ---
    Flag(("--embedding", "--embeddings"), "embedding", "embedding-only server: /embedding(s) and /v1/embeddings; no text generation (default: disabled)", None, "LLAMA_ARG_EMBEDDINGS"),
    Flag(("--rerank", "--reranking"), "reranking", "reranking server: /rerank and aliases; implies --embedding with rank pooling (default: disabled)", None, "LLAMA_ARG_RERANKING"),
    Flag(("--pooling",), "pooling", "pooling type for embeddings: none, mean, cls, last or rank (default: the model's own)", v.pooling, "LLAMA_ARG_POOLING", metavar="{none,mean,cls,last,rank}"),
    Flag(("--embd-normalize",), "embd_normalize", "default normalisation of pooled embeddings: -1 none, 0 max-abs int16, 1 taxicab, 2 euclidean, >2 p-norm (default: 2)", v.embd_normalize, None),
    Flag(("--spm-infill",), "spm_infill", "build /infill prompts as suffix, prefix, middle instead of prefix, suffix, middle (default: disabled)"),

    # --- HTTP ---
    Flag(("--host",), "host", "IP addresses to listen on, comma-separated, or UNIX socket paths ending in .sock; with several TCP addresses an IPv6 one binds IPv6 only (default: 127.0.0.1)", str, "LLAMA_ARG_HOST", metavar="HOST"),
    Flag(("--port",), "port", "port to listen on (default: 8080, 0 = random)", v.port, "LLAMA_ARG_PORT", metavar="PORT"),
    Flag(("--reuse-port",), "reuse_port", "let several servers listen on the same port (SO_REUSEPORT; default: disabled)", None, "LLAMA_ARG_REUSE_PORT"),
    Flag(("--path",), "static_path", "serve the files of this directory at / instead of the built-in chat page (default: none)", v.directory, "LLAMA_ARG_STATIC_PATH", metavar="PATH"),
    Flag(("--api-prefix",), "api_prefix", "serve every route under this prefix (and only there), e.g. /llama (default: none)", str, "LLAMA_ARG_API_PREFIX", metavar="PREFIX"),
    Flag(("--webui", "--ui"), "webui", "serve the web chat UI at / (default: enabled)", None, "LLAMA_ARG_UI", ("--no-webui", "--no-ui")),
    Flag(("--ui-config", "--webui-config"), "ui_config", "JSON object of default web UI settings", v.json_object, "LLAMA_ARG_UI_CONFIG", metavar="JSON"),
    Flag(("--ui-config-file", "--webui-config-file"), "ui_config", "read the default web UI settings from a JSON file", v.json_object_file, "LLAMA_ARG_UI_CONFIG_FILE", metavar="PATH"),
    Flag(("--ui-mcp-proxy", "--webui-mcp-proxy"), "ui_mcp_proxy", "serve the web UI's CORS proxy for MCP servers, GET/POST /cors-proxy?url=... (it fetches any URL a client names: experimental; default: disabled)", None, "LLAMA_ARG_UI_MCP_PROXY", ("--no-ui-mcp-proxy", "--no-webui-mcp-proxy")),
    Flag(("--tools",), "tools", "built-in agent tools to enable, comma-separated, or all: read_file, file_glob_search, grep_search, exec_shell_command, write_file, edit_file, get_info (default: none; sets --cors-origins to localhost unless given)", v.key_list, "LLAMA_ARG_TOOLS", metavar="TOOL1,TOOL2,..."),
    Flag(("--tools-runtime",), "tools_runtime", "where the tools run instead of this machine: docker:<image> or podman:<image> (a container of the server's own, removed at exit), docker-container:<id> or podman-container:<id> (a running one), ssh:<target> (a POSIX host, key-based auth and a trusted host key)", str, "LLAMA_ARG_TOOLS_RUNTIME", metavar="OPTION"),
    Flag(("--tools-root",), "tools_root", "llamaserve's own: the directory the file tools may not leave, symlinks resolved (default: the working directory at start-up)", v.directory, None, metavar="PATH"),
    Flag(("--mcp-servers-config",), "mcp_servers_config", "JSON file of MCP servers (mcpServers format), whose tools /tools lists as <server>_<tool> (sets --cors-origins to localhost unless given)", str, "LLAMA_ARG_MCP_SERVERS_CONFIG", metavar="PATH"),
    Flag(("--mcp-servers-json",), "mcp_servers_json", "inline JSON of MCP servers (mcpServers format)", str, "LLAMA_ARG_MCP_SERVERS_JSON", metavar="JSON"),
    Flag(("-ag", "--agent"), "agent", "every built-in tool (--tools all) and the web UI's CORS proxy (--ui-mcp-proxy), unless those are given; do not enable in untrusted environments (default: disabled)", None, "LLAMA_ARG_AGENT", ("-no-ag", "--no-agent")),
    Flag(("--sleep-idle-seconds",), "sleep_idle_seconds", "unload the model and its KV cache after this many seconds without work; the next request that needs them loads them again (default: -1 = never)", v.sleep_seconds, None, metavar="SECONDS"),
    Flag(("-to", "--timeout"), "timeout", "HTTP read/write timeout in seconds (default: 3600)", v.positive_int, "LLAMA_ARG_TIMEOUT"),
    Flag(("--sse-ping-interval",), "sse_ping_interval", "seconds between keep-alive comments on a waiting stream (default: 30, 0 = none)", v.nonneg_int, "LLAMA_ARG_SSE_PING_INTERVAL"),
    Flag(("--threads-http",), "threads_http", "threads for blocking HTTP work (default: -1 = auto)", v.integer, "LLAMA_ARG_THREADS_HTTP"),
    Flag(("--slots",), "endpoint_slots", "expose the /slots endpoint (default: enabled)", None, "LLAMA_ARG_ENDPOINT_SLOTS", ("--no-slots",)),
    Flag(("--metrics",), "endpoint_metrics", "enable the Prometheus metrics endpoint GET /metrics (default: disabled)", None, "LLAMA_ARG_ENDPOINT_METRICS"),
    Flag(("--props",), "endpoint_props", "enable changing global properties via POST /props (default: disabled)", None, "LLAMA_ARG_ENDPOINT_PROPS"),
    Flag(("--slot-save-path",), "slot_save_path", "directory for slot KV cache files: POST /slots/{id}?action=save|restore (default: disabled)", v.directory, None, metavar="PATH"),
    Flag(("--media-path",), "media_path", "directory from which file:// media may be read (default: none)", str, None, metavar="PATH"),
    Flag(("--offline",), "offline", "never reach the network: -hf and -mu models come from the cache only", None, "LLAMA_ARG_OFFLINE"),

    # --- multimodal ---
    Flag(("-mm", "--mmproj"), "mmproj_path", "multimodal projector file: images (and audio) in prompts", str, "LLAMA_ARG_MMPROJ", metavar="FILE"),
    Flag(("-mmu", "--mmproj-url"), "mmproj_url", "download the multimodal projector from this URL (kept in the cache, or at -mm's path)", str, "LLAMA_ARG_MMPROJ_URL", metavar="URL"),
    Flag(("--mmproj-auto",), "mmproj_auto", "download the projector of the -hf repository with the model (default: enabled; --no-mmproj: never)", None, "LLAMA_ARG_MMPROJ_AUTO", ("--no-mmproj", "--no-mmproj-auto")),
    Flag(("--mmproj-offload",), "mmproj_offload", "offload the projector to the GPU (default: enabled)", None, "LLAMA_ARG_MMPROJ_OFFLOAD", ("--no-mmproj-offload",)),
    Flag(("-mmdev", "--mmproj-device"), "", "device for the multimodal projector", str, "MTMD_BACKEND_DEVICE", metavar="DEVICE", noop=MMDEV_NOOP),
    Flag(("--image-min-tokens",), "image_min_tokens", "fewest tokens an image may take (dynamic-resolution vision models; default: the model's)", v.nonneg_int, "LLAMA_ARG_IMAGE_MIN_TOKENS"),
    Flag(("--image-max-tokens",), "image_max_tokens", "most tokens an image may take (dynamic-resolution vision models; default: the model's)", v.nonneg_int, "LLAMA_ARG_IMAGE_MAX_TOKENS"),
    Flag(("--mtmd-batch-max-tokens",), "mtmd_batch_max_tokens", "most media tokens encoded in one batch (default: libmtmd's)", v.nonneg_int, "LLAMA_ARG_MTMD_BATCH_MAX_TOKENS"),
    Flag(("--video-fps",), "", "frames per second sampled from videos", v.nonneg_float, "LLAMA_ARG_VIDEO_FPS", noop=VIDEO_NOOP),
    Flag(("--video-timestamp-interval",), "", "milliseconds between text timestamps in videos", v.nonneg_int, "LLAMA_ARG_VIDEO_TIMESTAMP_INTERVAL", noop=VIDEO_NOOP),
    Flag(("--video-ffmpeg-dir",), "", "directory holding ffmpeg and ffprobe", str, "LLAMA_ARG_VIDEO_FFMPEG_DIR", metavar="DIR", noop=VIDEO_NOOP),

    # --- speculative decoding (engine/speculative.py) ---
    Flag(("--spec-draft-model", "-md", "--model-draft"), "spec.draft_model", "draft model for speculative decoding; alone, it turns on --spec-type draft-simple (default: unused)", str, "LLAMA_ARG_SPEC_DRAFT_MODEL", metavar="FNAME"),
    Flag(("--spec-draft-hf", "-hfd", "-hfrd", "--hf-repo-draft"), "spec.draft_hf", "Hugging Face repository of the draft model, fetched with the model as -hf fetches it (it sets -md); alone, it turns on --spec-type draft-simple", str, "LLAMA_ARG_SPEC_DRAFT_HF_REPO", metavar="<user>/<model>[:quant]"),
    Flag(("--spec-type",), "spec.types", f"speculative decoding types, comma-separated, tried in llama-server's order: {', '.join(SPEC_TYPES)} (default: none)", _spec_type, "LLAMA_ARG_SPEC_TYPE", metavar="TYPE", repeatable=True),
    Flag(("--spec-default",), "spec.default_setup", "the default speculative decoding setup: --spec-type ngram-mod with n-gram 24, drafts of 48 to 64 tokens"),
    *(Flag(names, "spec." + dest, "speculative decoding: " + text, parse, env, metavar=metavar, gpu=gpu, noop=noop)
      for names, dest, text, parse, env, metavar, gpu, noop in (
        (("--spec-draft-threads", "-td", "--threads-draft"), "draft_threads", "draft model generation threads (default: as --threads)", v.integer, None, "N", None, ""),
        (("--spec-draft-threads-batch", "-tbd", "--threads-batch-draft"), "draft_threads_batch", "draft model batch threads (default: as --spec-draft-threads)", v.integer, None, "N", None, ""),
        (("--spec-draft-cpu-mask", "-Cd", "--cpu-mask-draft"), "draft_cpu_mask", "draft model CPU mask (default: as --cpu-mask)", v.cpu_mask, None, "M", None, ""),
        (("--spec-draft-cpu-range", "-Crd", "--cpu-range-draft"), "draft_cpu_range", "draft model CPU range (default: as --cpu-range)", v.cpu_range, None, "lo-hi", None, ""),
        (("--spec-draft-cpu-strict", "--cpu-strict-draft"), "draft_cpu_strict", "draft model strict CPU placement (default: as --cpu-strict)", v.boolean, None, "<0|1>", None, ""),
        (("--spec-draft-prio", "--prio-draft"), "draft_priority", "draft model thread priority (default: as --prio)", v.priority, None, "N", None, ""),
        (("--spec-draft-poll", "--poll-draft"), "draft_poll", "draft model polling level", v.poll, None, "<0|1>", None, POLL_NOOP),
        (("--spec-draft-cpu-mask-batch", "-Cbd", "--cpu-mask-batch-draft"), "draft_cpu_mask_batch", "draft model batch CPU mask (default: as --spec-draft-cpu-mask)", v.cpu_mask, None, "M", None, ""),
        (("--spec-draft-cpu-strict-batch", "--cpu-strict-batch-draft"), "draft_cpu_strict_batch", "draft model batch strict CPU placement (default: as --spec-draft-cpu-strict)", v.boolean, None, "<0|1>", None, ""),
        (("--spec-draft-prio-batch", "--prio-batch-draft"), "draft_priority_batch", "draft model batch thread priority (default: as --spec-draft-prio)", v.priority, None, "N", None, ""),
        (("--spec-draft-poll-batch", "--poll-batch-draft"), "draft_poll_batch", "draft model batch polling level", v.poll, None, "<0|1>", None, POLL_NOOP),
        (("--spec-draft-type-k", "-ctkd", "--cache-type-k-draft"), "draft_cache_type_k", f"draft model KV cache type for K {_CACHE_TYPES} (default: f16)", v.cache_type, "LLAMA_ARG_SPEC_DRAFT_CACHE_TYPE_K", "TYPE", None, ""),
        (("--spec-draft-type-v", "-ctvd", "--cache-type-v-draft"), "draft_cache_type_v", f"draft model KV cache type for V {_CACHE_TYPES} (default: f16)", v.cache_type, "LLAMA_ARG_SPEC_DRAFT_CACHE_TYPE_V", "TYPE", None, ""),
        (("--spec-draft-override-tensor", "-otd", "--override-tensor-draft"), "draft_tensor_overrides", "draft model tensor buffer types", v.override_tensor, None, "<tensor name pattern>=<buffer type>,...", bool, ""),
        (("--spec-draft-cpu-moe", "-cmoed", "--cpu-moe-draft"), "draft_cpu_moe", "keep the draft model's MoE weights on the CPU", None, "LLAMA_ARG_SPEC_DRAFT_CPU_MOE", "", bool, ""),
        (("--spec-draft-n-cpu-moe", "--spec-draft-ncmoe", "-ncmoed", "--n-cpu-moe-draft"), "draft_n_cpu_moe", "draft model MoE layers on the CPU", v.nonneg_int, "LLAMA_ARG_SPEC_DRAFT_N_CPU_MOE", "N", _positive, ""),
        (("--spec-draft-n-max",), "draft_n_max", "most tokens the draft model drafts at once (default: 3)", v.nonneg_int, "LLAMA_ARG_SPEC_DRAFT_N_MAX", "N", None, ""),
        (("--spec-draft-n-min",), "draft_n_min", "fewest tokens of a draft model's draft worth verifying (default: 0)", v.nonneg_int, "LLAMA_ARG_SPEC_DRAFT_N_MIN", "N", None, ""),
        (("--spec-synth-len",), "synth_len", "benchmarking: a synthetic mean acceptance length, target token included; the output is not the model's", v.nonneg_float, "LLAMA_ARG_SPEC_SYNTH_LEN", "L", None, ""),
        (("--spec-synth-rates",), "synth_rates", "benchmarking: synthetic acceptance rates, one per draft position; the output is not the model's", v.number_list, "LLAMA_ARG_SPEC_SYNTH_RATES", "P0,P1,...", None, ""),
        (("--spec-draft-p-split", "--draft-p-split"), "draft_p_split", "draft split probability", v.unit_float, "LLAMA_ARG_SPEC_DRAFT_P_SPLIT", "P", None, P_SPLIT_NOOP),
        (("--spec-draft-p-min", "--draft-p-min"), "draft_p_min", "the draft model's draft ends at a token it is less sure of (default: 0.00)", v.unit_float, "LLAMA_ARG_SPEC_DRAFT_P_MIN", "P", None, ""),
        (("--spec-draft-device", "-devd", "--device-draft"), "draft_devices", "draft model devices (default: as --device)", v.key_list, None, "<dev1,dev2,..>", bool, ""),
        (("--spec-draft-ngl", "-ngld", "--gpu-layers-draft", "--n-gpu-layers-draft"), "draft_n_gpu_layers", "draft model GPU layers: N, 'auto' or 'all' (default: auto)", v.gpu_layers, "LLAMA_ARG_N_GPU_LAYERS_DRAFT", "N", _positive, ""),
        (("--spec-ngram-mod-n-min",), "ngram_mod_n_min", "ngram-mod: fewest tokens of a draft (default: 48)", v.nonneg_int, None, "N", None, ""),
        (("--spec-ngram-mod-n-max",), "ngram_mod_n_max", "ngram-mod: most tokens of a draft (default: 64)", v.nonneg_int, None, "N", None, ""),
        (("--spec-ngram-mod-n-match",), "ngram_mod_n_match", "ngram-mod: length of the n-gram that predicts a token (default: 24)", v.nonneg_int, None, "N", None, ""),
        (("--spec-ngram-simple-size-n",), "ngram_simple_size_n", "ngram-simple: length of the n-gram looked up (default: 12)", v.nonneg_int, None, "N", None, ""),
        (("--spec-ngram-simple-size-m",), "ngram_simple_size_m", "ngram-simple: length of the draft that follows it (default: 48)", v.nonneg_int, None, "N", None, ""),
        (("--spec-ngram-simple-min-hits",), "ngram_simple_min_hits", "ngram-simple: least hits", v.nonneg_int, None, "N", None, MIN_HITS_NOOP),
        (("--spec-ngram-map-k-size-n",), "ngram_map_k_size_n", "ngram-map-k: key length", v.nonneg_int, None, "N", None, MAP_NOOP),
        (("--spec-ngram-map-k-size-m",), "ngram_map_k_size_m", "ngram-map-k: draft length", v.nonneg_int, None, "N", None, MAP_NOOP),
        (("--spec-ngram-map-k-min-hits",), "ngram_map_k_min_hits", "ngram-map-k: least hits", v.nonneg_int, None, "N", None, MAP_NOOP),
        (("--spec-ngram-map-k4v-size-n",), "ngram_map_k4v_size_n", "ngram-map-k4v: key length", v.nonneg_int, None, "N", None, MAP_NOOP),
        (("--spec-ngram-map-k4v-size-m",), "ngram_map_k4v_size_m", "ngram-map-k4v: draft length", v.nonneg_int, None, "N", None, MAP_NOOP),
        (("--spec-ngram-map-k4v-min-hits",), "ngram_map_k4v_min_hits", "ngram-map-k4v: least hits", v.nonneg_int, None, "N", None, MAP_NOOP),
        (("-lcs", "--lookup-cache-static"), "lookup_cache_static", "static n-gram lookup cache file", str, None, "FNAME", None, CACHE_NOOP),
        (("-lcd", "--lookup-cache-dynamic"), "lookup_cache_dynamic", "dynamic n-gram lookup cache file", str, None, "FNAME", None, CACHE_NOOP),
    )),
    Flag(("--spec-draft-backend-sampling",), "spec.draft_backend_sampling", "speculative decoding: sample the draft on the backend", None, "LLAMA_ARG_SPEC_DRAFT_BACKEND_SAMPLING", ("--no-spec-draft-backend-sampling",), noop=BACKEND_SAMPLING_NOOP),
    Flag(("--draft", "--draft-n", "--draft-max"), "", "removed in llama.cpp", v.integer, "LLAMA_ARG_DRAFT_MAX", removed="use --spec-draft-n-max or --spec-ngram-mod-n-max"),
    Flag(("--draft-min", "--draft-n-min"), "", "removed in llama.cpp", v.integer, "LLAMA_ARG_DRAFT_MIN", removed="use --spec-draft-n-min or --spec-ngram-mod-n-min"),
    Flag(("--spec-ngram-size-n",), "", "removed in llama.cpp", v.integer, None, removed="use the --spec-ngram-*-size-n option of the type, or --spec-ngram-mod-n-match"),
    Flag(("--spec-ngram-size-m",), "", "removed in llama.cpp", v.integer, None, removed="use the --spec-ngram-*-size-m option of the type"),
    Flag(("--spec-ngram-min-hits",), "", "removed in llama.cpp", v.integer, None, removed="use the --spec-ngram-*-min-hits option of the type"),

    # --- router mode (no --model) ---
    Flag(("--models-dir",), "models_dir", "router mode: directory of GGUF models, each served by name (default: none)", str, "LLAMA_ARG_MODELS_DIR", metavar="PATH"),
    Flag(("--models-preset",), "models_preset", "router mode: INI file of models and per-model flags (default: none)", str, "LLAMA_ARG_MODELS_PRESET", metavar="PATH"),
    Flag(("--models-max",), "models_max", "router mode: models loaded at once; loading another unloads the least recently used idle one (default: 4, 0 = unlimited)", v.nonneg_int, "LLAMA_ARG_MODELS_MAX"),
    Flag(("--models-autoload",), "models_autoload", "router mode: load a model on its first request (default: enabled)", None, "LLAMA_ARG_MODELS_AUTOLOAD", ("--no-models-autoload",)),
    Flag(("--models-default",), "models_default", "router mode: model for requests that name none (default: the bundled model)", str, "LLAMA_ARG_MODELS_DEFAULT", metavar="NAME"),
    Flag(("--models-idle-ttl",), "models_idle_ttl", "router mode: unload a model after this many idle seconds (default: 0 = never)", v.seconds, "LLAMA_ARG_MODELS_IDLE_TTL", metavar="SECONDS"),
    Flag(("--shutdown-grace",), "shutdown_grace", "seconds in-flight requests may run after SIGTERM/SIGINT before they are ended with an error (default: 30)", v.nonneg_float, None, metavar="SECONDS"),

    # --- access control ---
    Flag(("--api-key",), "api_keys", "API key clients must send (Authorization: Bearer KEY or x-api-key: KEY); repeatable or comma-separated (default: none)", v.key_list, "LLAMA_API_KEY", metavar="KEY", repeatable=True),
    Flag(("--api-key-file",), "api_key_file", "file of API keys, one per line; lines starting with # are comments (default: none)", str, "LLAMA_ARG_API_KEY_FILE", metavar="FNAME"),
    Flag(("--ssl-key-file",), "ssl_key_file", "PEM-encoded TLS private key: serve HTTPS (with --ssl-cert-file)", str, "LLAMA_ARG_SSL_KEY_FILE", metavar="FNAME"),
    Flag(("--ssl-cert-file",), "ssl_cert_file", "PEM-encoded TLS certificate: serve HTTPS (with --ssl-key-file)", str, "LLAMA_ARG_SSL_CERT_FILE", metavar="FNAME"),
    Flag(("--cors-origins",), "cors_origins", "allowed CORS origins: '*', 'localhost' (only localhost origins) or a comma-separated list (default: *)", str, "LLAMA_ARG_CORS_ORIGINS", metavar="ORIGINS"),
    Flag(("--cors-methods",), "cors_methods", "methods announced in CORS preflight answers (default: GET, POST, DELETE, OPTIONS)", str, "LLAMA_ARG_CORS_METHODS", metavar="METHODS"),
    Flag(("--cors-headers",), "cors_headers", "headers allowed in CORS requests (default: *)", str, "LLAMA_ARG_CORS_HEADERS", metavar="HEADERS"),
    Flag(("--cors-credentials",), "cors_credentials", "allow credentials in CORS requests; with --cors-origins '*' the request's Origin is echoed (default: enabled)", None, "LLAMA_ARG_CORS_CREDENTIALS", ("--no-cors-credentials",)),

    # --- request limits (llamaserve's own) ---
    Flag(("--max-body-size",), "max_body_size", "largest request body accepted, in bytes or with K/M/G (default: 32M)", v.byte_size, None, metavar="SIZE"),
    Flag(("--max-queue",), "max_queue", "tasks that may wait for a free slot; beyond it requests get 503 (default: 0 = no limit)", v.nonneg_int, None),
    Flag(("--max-prompts",), "max_prompts", "most prompts (times n choices) one request may run (default: 2048)", v.positive_int, None),
    Flag(("--max-predict",), "sampling.max_predict", "most tokens one request may generate, whatever its n_predict / max_tokens asks (default: 0 = no limit)", v.nonneg_int, None),
    Flag(("--max-n-probs",), "max_n_probs", "largest n_probs / top_logprobs a request may ask for (default: 100)", v.nonneg_int, None),

    # --- logging ---
    Flag(("-v", "--verbose", "--log-verbose"), "verbose", "log everything: per-slot scheduling, libllama's own log, __verbose in responses"),
    Flag(("-lv", "--verbosity", "--log-verbosity"), "verbosity", "log threshold: 0 output, 1 errors, 2 warnings, 3 info, 4 debug (default: 3)", v.integer, "LLAMA_ARG_LOG_VERBOSITY"),
    Flag(("--log-disable",), "log_disable", "disable logging"),
    Flag(("--log-file",), "log_file", "also write the log to this file", str, "LLAMA_ARG_LOG_FILE", metavar="FNAME"),
    Flag(("--log-colors",), "log_colors", "colour the log: on, off or auto (a terminal; default: auto)", v.on_off_auto, "LLAMA_ARG_LOG_COLORS", metavar="[on|off|auto]"),
    Flag(("--log-prefix",), "log_prefix", "begin each log line with its level (default: disabled)", None, "LLAMA_ARG_LOG_PREFIX", ("--no-log-prefix",)),
    Flag(("--log-timestamps",), "log_timestamps", "begin each log line with its time (default: disabled)", None, "LLAMA_ARG_LOG_TIMESTAMPS", ("--no-log-timestamps",)),
    Flag(("--log-jsonl",), "log_jsonl", "log one JSON object per line, without colours (default: disabled)", None, "LLAMA_ARG_LOG_JSONL", ("--no-log-jsonl",)),
    Flag(("--log-prompts-dir",), "log_prompts_dir", "write each request's prompt to a file in this directory (debugging; default: none)", str, None, metavar="PATH"),
)

# By every spelling: (flag, whether the spelling is a negative one)
BY_NAME: dict[str, tuple[Flag, bool]] = {}
for _flag in FLAGS:
    for _name in _flag.names:
        BY_NAME[_name] = (_flag, False)
    for _name in _flag.negatives:
        BY_NAME[_name] = (_flag, True)
