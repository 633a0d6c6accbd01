"""ProviderOptions: where the policy runs, the provider part of a run's configuration.

Every provider builds itself from these (`Provider.from_options(options, store)`), so the code that
needs a provider never branches on its name. The options never hold secrets: API keys come from
the environment or the user config file (see iro_blackbox.credentials).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..models import DEFAULT_MODEL
from ..params import check_positive_int
from ..registry import PROVIDERS
from ..utils import option

API_MODES = (
    "auto",
    "token-ids",
    "completions",
    "chat-continue",
    "chat-prefix",
    "chat-partial",
    "chat-prefill",
    "chat",
)


@dataclass
class ProviderOptions:
    model: str = option(
        "Policy model: alias, local folder, .gguf file or hub id (hf); the served model name (openai).",
        default=DEFAULT_MODEL,
    )
    provider: str = option(
        "Where the policy runs: hf (local transformers), vllm (vLLM's offline engine) or openai "
        "(any OpenAI-compatible API).",
        default="hf",
    )
    base_url: str | None = option(
        "Base URL of the OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1.", default=None
    )
    api_key_env: str | None = option(
        "openai provider: the environment variable holding the API key for --base-url (default: "
        "the config file's entry for that URL, else OPENAI_API_KEY).",
        default=None,
    )
    tokenizer: str | None = option(
        "openai provider: a local model/tokenizer whose chat template renders prompts for "
        "/v1/completions (default: --model itself when it is an alias, a .gguf file or a folder).",
        default=None,
    )
    api_mode: str = option(
        "openai provider: how a partial answer is continued: auto (the most exact mode the probe "
        "verifies) | token-ids (vLLM, SGLang) | completions (template rendered locally, needs "
        "--tokenizer) | chat-continue (vLLM) | chat-prefix (DeepSeek /beta, Mistral) | "
        "chat-partial (Qwen) | chat-prefill (llama.cpp server, Ollama, OpenRouter) | chat "
        "(whole answers only).",
        default="auto",
    )
    concurrency: int = option("openai provider: requests in flight at once.", default=8)
    rpm: int | None = option(
        "openai provider: send at most this many requests per minute (halved for a while after "
        "each 429 the server answers, then won back).",
        default=None,
    )
    tpm: int | None = option(
        "openai provider: send at most this many tokens (prompt + max output) per minute "
        "(corrected by each reply's usage; halved for a while after a 429).",
        default=None,
    )
    device: str | None = option("hf provider / value models: cpu, cuda, or auto.", default=None)
    batch_api: bool = option(
        "openai provider: send the non-adaptive rollouts (iteration-1 sampling, Best-of-N) through the Batch API.",
        default=False,
    )
    no_cache: bool = option(
        "Do not replay provider responses from the request cache (they are still written).",
        default=False,
    )
    reprobe: bool = option(
        "openai provider: probe the endpoint again instead of reusing the stored probe.",
        default=False,
    )
    price_input: float | None = option(
        "openai provider: USD per 1M input tokens (overrides the price list; prices a "
        "self-hosted endpoint). Give --price-output too.",
        default=None,
    )
    price_output: float | None = option(
        "openai provider: USD per 1M output tokens (with --price-input).", default=None
    )
    max_cost: float | None = option(
        "Stop before spending more than this many USD on the provider (the run's total over "
        "every attempt; checked before each request).",
        default=None,
    )
    max_requests: int | None = option(
        "Stop before sending more than this many HTTP requests (the run's total).", default=None
    )
    max_output_tokens: int | None = option(
        "Stop before generating more than this many output tokens (the run's total).",
        default=None,
    )

    vllm_python: str | None = option(
        "vllm provider: the Python that has vLLM installed (default: $IRO_VLLM_PYTHON, else "
        "this one).",
        default=None,
    )
    vllm_dtype: str = option(
        "vllm provider: weights and activations dtype: auto | float32 | bfloat16 | float16.",
        default="auto",
    )
    vllm_kv_cache_gb: int = option("vllm provider, CPU builds: KV cache memory in GiB.", default=1)
    vllm_tensor_parallel: int = option(
        "vllm provider: GPUs one model is split over (tensor parallel).", default=1
    )

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ConfigError(
                f"provider must be one of {', '.join(PROVIDERS.names())}, got {self.provider!r}"
            )
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f"model must be a non-empty string, got {self.model!r}")
        check_positive_int("concurrency", self.concurrency)
        for name in ("rpm", "tpm"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        if self.api_mode not in API_MODES:
            raise ConfigError(
                f"api_mode must be one of {', '.join(API_MODES)}, got {self.api_mode!r}"
            )
        check_positive_int("vllm_tensor_parallel", self.vllm_tensor_parallel)
        if self.vllm_dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ConfigError(
                f"vllm_dtype must be auto, float32, bfloat16 or float16, got {self.vllm_dtype!r}"
            )
        check_positive_int("vllm_kv_cache_gb", self.vllm_kv_cache_gb)
        if self.batch_api and self.provider != "openai":
            raise ConfigError("batch_api needs --provider openai")
        for name in ("price_input", "price_output", "max_cost"):
            v = getattr(self, name)
            if v is not None and (
                isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0
            ):
                raise ConfigError(f"{name} must be a number >= 0, got {v!r}")
        if (self.price_input is None) != (self.price_output is None):
            raise ConfigError("give both --price-input and --price-output (USD per 1M tokens)")
        for name in ("max_requests", "max_output_tokens"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name), minimum=0)
