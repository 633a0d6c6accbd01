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

API_MODES = ("auto", "completions", "chat-continue", "chat")


@dataclass
class ProviderOptions:
    model: str = option(
        "Policy model: alias, local folder, .gguf file or hub id (hf); the served model name (openai).",
        default=DEFAULT_MODEL,
    )
    provider: str = option(
        "Where the policy runs: hf (local transformers) or openai (any OpenAI-compatible API).",
        default="hf",
    )
    base_url: str | None = option(
        "Base URL of the OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1.", default=None
    )
    tokenizer: str | None = option(
        "openai provider: a local model/tokenizer whose chat template renders prompts for /v1/completions.",
        default=None,
    )
    api_mode: str = option(
        "openai provider: auto | completions | chat-continue | chat.", default="auto"
    )
    concurrency: int = option("openai provider: requests in flight at once.", default=8)
    device: str | None = option("hf provider / value models: cpu, cuda, or auto.", default=None)
    batch_api: bool = option(
        "openai provider: send the non-adaptive rollouts (iteration-1 sampling, Best-of-N) through the Batch API.",
        default=False,
    )
    no_cache: bool = option(
        "Do not replay provider responses from the request cache (they are still written).",
        default=False,
    )

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ConfigError(
                f"provider must be one of {', '.join(PROVIDERS.names())}, got {self.provider!r}"
            )
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f"model must be a non-empty string, got {self.model!r}")
        check_positive_int("concurrency", self.concurrency)
        if self.api_mode not in API_MODES:
            raise ConfigError(
                f"api_mode must be one of {', '.join(API_MODES)}, got {self.api_mode!r}"
            )
        if self.batch_api and self.provider != "openai":
            raise ConfigError("batch_api needs --provider openai")
