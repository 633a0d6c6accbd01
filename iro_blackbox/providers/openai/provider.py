"""The `openai` provider: any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp, DeepSeek,
Mistral, Qwen, OpenRouter, ...), spoken to through the official `openai` SDK.

    p = OpenAIProvider("smollm2-135m-instruct", base_url="http://127.0.0.1:8000/v1", store=store)
    print(await p.prepare(needs_continuation=True))     # probes (or reuses a stored probe)
    chunks = await p.extend([Extend(messages, prefix="The answer", n=4, max_tokens=16)])

The provider puts together one part per concern, each in its own module:

    negotiation.py  which mode continues an answer here (probe.py verifies), and the advice
    wire.py         the request body of each dialect (modes.py) and the samples of a reply
    sampler.py      the cached sampler: replay cache, `n` fan-out, greedy asked once
    tokens.py       token counting, the local chat template and token ids, and the tokenizer
                    --model carries (an alias, a .gguf file, a model folder)
    transport.py    the SDK client (its retries off), our retries, rate limits, budget checks
    batch.py        the Batch API (half price, whole answers), through this class's public seams

The API key is scoped to its host (credentials.api_key_for: `api_key_env`, the config file's
entry for the base URL, OPENAI_API_KEY only for OpenAI's API or a `named_endpoint`); it never
enters a cache key, the store, describe(), logs or error messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from ...credentials import api_key_for
from ...errors import ConfigError, PermanentError, TransientError
from ...params import check_positive_int
from ...store.cache import RequestCacheStore
from ...store.probes import ProbeStore
from ...utils import stable_hash
from ..base import Chunk, Extend, Prompt, ProviderStats, Usage
from ..budget import BudgetGuard
from ..options import API_MODES
from . import batch
from .modes import COMPLETIONS
from .negotiation import Negotiator, sampling_warnings
from .pricing import Prices, parse_prices
from .probe import echo_slice
from .ratelimit import RateLimiter
from .retry import RetryPolicy
from .sampler import CACHE_VERSION, CachedSampler
from .tokens import TokenCounter, alias_tokenizer
from .transport import CALL_FAILED, Transport
from .wire import wire_seed

DEFAULT_BASE_URL = "https://api.openai.com/v1"
__all__ = ["CACHE_VERSION", "DEFAULT_BASE_URL", "OpenAIProvider", "probe_endpoint"]


class OpenAIProvider:
    """Chunked generation from an OpenAI-compatible HTTP endpoint, every response cached.

    Args:
        model: the model name the server knows.
        base_url: endpoint root ending in /v1 (default OpenAI's).
        api_key: else the variable `api_key_env` names, else the config file's entry for
            `base_url`, else env OPENAI_API_KEY / the config file's api_key, but only for
            OpenAI's API or a `named_endpoint` (see iro_blackbox.credentials); local servers need
            none (a dummy is sent).
        api_key_env: the environment variable holding this endpoint's key.
        named_endpoint: the user named `base_url` (a command's --base-url); False for endpoints
            from a grader's spec, which never get OPENAI_API_KEY unless they are OpenAI's.
        store: a Store; responses are cached in its request_cache table, probe results in its
            probes table (None: no cache).
        cache: False = do not read the cache (responses are still written).
        mode: "auto" or a mode of modes.py.
        tokenizer: local model spec whose chat template renders prompts for the completions and
            token-ids modes (default: `model` when it is a local alias such as
            smollm2-135m-instruct, a .gguf file or a model folder).
        concurrency: HTTP requests in flight at most.
        rpm, tpm: requests / tokens per minute limits (None = none).
        timeout: seconds per HTTP request.
        max_retries: retries of a transient failure (429, 408, 5xx, timeout, reset, bad JSON).
        prices: USD per 1M tokens {"prompt": p, "completion": c}; default: the price list's.
        budget: checks every request before it is sent (None: no limits).
        reprobe: probe again even when a probe of this endpoint is stored.
        sleep: async sleep used for backoff and rate limiting (tests inject a recorder).
        clock: the rate limiter's clock (default time.monotonic; tests inject one).
        retry_policy: backoff settings (default RetryPolicy(max_retries)).
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        store: Any = None,
        cache: bool = True,
        mode: str = "auto",
        tokenizer: str | None = None,
        concurrency: int = 8,
        rpm: int | None = None,
        tpm: int | None = None,
        timeout: float = 60.0,
        max_retries: int = 6,
        prices: dict[str, float] | None = None,
        budget: BudgetGuard | None = None,
        reprobe: bool = False,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        retry_policy: RetryPolicy | None = None,
        clock: Callable[[], float] | None = None,
        api_key_env: str | None = None,
        named_endpoint: bool = True,
    ):
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"model must be a non-empty string, got {model!r}")
        if mode not in API_MODES:
            raise ConfigError(f"api_mode must be one of {', '.join(API_MODES)}, got {mode!r}")
        check_positive_int("concurrency", concurrency)
        check_positive_int("max_retries", max_retries, minimum=0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.model_name = model
        self.base_url = base_url
        self.mode = mode
        self.tokenizer_spec = tokenizer or alias_tokenizer(model)
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.stats = ProviderStats()
        self.reprobe = reprobe
        self._rpm, self._tpm = rpm, tpm
        sleep = sleep or asyncio.sleep
        key = api_key_for(base_url, api_key, key_env=api_key_env, named=named_endpoint)
        self._has_key = key is not None
        self.transport = Transport(
            base_url,
            key,
            self.timeout,
            concurrency,
            retry_policy or RetryPolicy(max_retries=max_retries),
            RateLimiter(rpm, tpm, clock=clock, sleep=sleep),
            sleep,
            self.stats,
            parse_prices(prices, model, base_url),
            budget,
        )
        self.tokens = TokenCounter(model, self.tokenizer_spec)
        cache_store = probes = None
        if store is not None:
            cache_store = RequestCacheStore(store, enabled=cache)
            probes = ProbeStore(store)
        self.negotiator = Negotiator(self.transport, self.tokens, model, mode, probes, reprobe)
        self.sampler = CachedSampler(
            self.name, model, self.transport, self.negotiator, self.tokens, self.stats, cache_store
        )

    @classmethod
    def from_options(
        cls, options: Any, store: Any = None, budget: BudgetGuard | None = None
    ) -> OpenAIProvider:
        """The provider a run's ProviderOptions describe; responses cached in `store`."""
        prices = None
        if options.price_input is not None or options.price_output is not None:
            if options.price_input is None or options.price_output is None:
                raise ConfigError("give both --price-input and --price-output (USD per 1M tokens)")
            prices = {"prompt": options.price_input, "completion": options.price_output}
        return cls(
            model=options.model,
            base_url=options.base_url,
            store=store,
            cache=not options.no_cache,
            mode=options.api_mode,
            tokenizer=options.tokenizer,
            concurrency=options.concurrency,
            rpm=options.rpm,
            tpm=options.tpm,
            prices=prices,
            budget=budget,
            reprobe=options.reprobe,
            api_key_env=options.api_key_env,
        )

    # -- settings shared with the parts ----------------------------------------------------------
    @property
    def prices(self) -> Prices:
        return self.transport.prices

    @prices.setter
    def prices(self, value: Prices) -> None:
        self.transport.prices = value

    @property
    def budget(self) -> BudgetGuard | None:
        """Checks every request before it is sent (a run sets it after building the provider)."""
        return self.transport.budget

    @budget.setter
    def budget(self, value: BudgetGuard | None) -> None:
        self.transport.budget = value

    @property
    def rate_limiter(self) -> RateLimiter:
        """The --rpm / --tpm limiter: the limits in force and its accounting."""
        return self.transport.limiter

    async def __aenter__(self) -> OpenAIProvider:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.transport.aclose()

    # -- what the endpoint can do ------------------------------------------------------------------
    def stored_probe(self) -> dict[str, Any] | None:
        """The stored probe of this endpoint and model, if any (no request)."""
        return self.negotiator.stored_probe()

    async def probe(self) -> dict[str, Any]:
        """What the endpoint can do (probe.py), stored per (base URL, model, tokenizer) and
        reused (negotiation.Negotiator.probe)."""
        return await self.negotiator.probe()

    async def prepare(self, needs_continuation: bool, chat_prompts: bool = True) -> str:
        """Settle the mode before any paid request (negotiation.Negotiator.prepare)."""
        return await self.negotiator.prepare(needs_continuation, chat_prompts)

    async def mode_choice(self, chat_prompts: bool) -> str | None:
        """The mode `auto` takes for chat (or text) prompts here; None if none answers."""
        return await self.negotiator.choice(chat_prompts)

    @property
    def chosen_mode(self) -> str | None:
        """The mode requests run in, once settled."""
        return self.negotiator.chosen

    sampling_warnings = staticmethod(sampling_warnings)

    def count_prompt(self, prompt: Prompt) -> int:
        """Input tokens of a prompt as it will be sent (estimates before a run)."""
        return self.tokens.count_prompt(prompt)

    def describe(self) -> dict[str, Any]:
        """Settings and (once probed) capabilities; never the API key."""
        cache = self.sampler.cache
        return {
            "provider": self.name,
            "model": self.model_name,
            "base_url": self.base_url,
            "mode": self.mode,
            "chosen_mode": self.negotiator.chosen,
            "tokenizer": self.tokenizer_spec,
            "api_key_set": self._has_key,
            "concurrency": self.concurrency,
            "rpm": self._rpm,
            "tpm": self._tpm,
            "timeout": self.timeout,
            "max_retries": self.transport.policy.max_retries,
            "prices_usd_per_1m": {
                "prompt": self.prices.prompt,
                "completion": self.prices.completion,
                "source": self.prices.source,
            },
            "budget": None if self.budget is None else vars(self.budget.budget),
            "cache": None if cache is None else ("read-write" if cache.enabled else "write-only"),
            "capabilities": self.negotiator.caps,
            "n_honoured": dict(self.negotiator.n_honoured),
        }

    # -- generation and scoring ----------------------------------------------------------------
    async def extend(self, requests: list[Extend]) -> list[list[Chunk]]:
        """chunks[i][j]: the j-th of requests[i].n continuations (sample index sample_index + j)."""
        return await self.sampler.extend(requests)

    async def score(self, prompt: Prompt, text: str) -> list[float]:
        """Token logprobs of `text` as the answer to `prompt` via /completions echo + logprobs
        (vLLM); PermanentError where the server cannot do it reliably (llama.cpp, OpenAI chat)."""
        caps = await self.probe()
        if not caps.get("echo_score"):
            raise PermanentError(
                f"openai: score() needs /completions with echo and logprobs, which {self.base_url} "
                f"(model '{self.model_name}') does not support reliably (vLLM does)"
            )
        head = self.tokens.render(prompt)
        body = {
            "model": self.model_name,
            "prompt": head + text,
            "max_tokens": 1,
            "echo": True,
            "logprobs": 1,
            "temperature": 0.0,
        }
        req = {"kind": "score", **self.cache_request(COMPLETIONS, body, None, 0)}
        key = stable_hash(req)
        cache = self.sampler.cache
        hit = cache.get(key) if cache is not None else None
        if hit is not None:
            self.stats.cache_hits += 1
            return list(hit["logprobs"])
        est = self.tokens.estimate_input(body)
        token = CALL_FAILED.set(None)
        try:
            data, hold = await self.transport.post(COMPLETIONS, body, est, 1)
        finally:
            CALL_FAILED.reset(token)
        out = echo_slice(data, len(head), len(head) + len(text))
        usage = data.get("usage") or {}
        self.transport.account(
            Usage(usage.get("prompt_tokens", 0) or est, usage.get("completion_tokens", 0) or 0),
            hold,
            est + 1,
        )
        if out is None:
            raise TransientError(f"openai: malformed echo reply from {self.base_url}{COMPLETIONS}")
        if cache is not None:
            cache.put(key, self.name, req, {"logprobs": out})
        return out

    # -- the seams of the Batch API (batch.py) ---------------------------------------------------
    async def prefetch(self, requests: list[Extend], **kw: Any) -> batch.BatchReport:
        """Fill the request cache with every sample of `requests` (whole responses) through the
        Batch API, at half price; the following extend() calls then replay them. `kw`: see
        batch.prefetch (cancel_check, on_status, poll_interval, ...)."""
        return await batch.prefetch(self, requests, **kw)

    wire_seed = staticmethod(wire_seed)  # the seed sent for sample i of a request seeded `base`

    @property
    def request_cache(self) -> Any:
        """The request cache in the store (None without a store)."""
        return self.sampler.cache

    async def plan(self, req: Extend) -> tuple[str, dict[str, Any]]:
        """(endpoint, request body without n and seed) that `extend` would send for `req`."""
        _, endpoint, body = await self.sampler.plan(req)
        return endpoint, body

    def cache_request(self, endpoint: str, body: dict, seed: int | None, idx: int) -> dict:
        """The request-cache record of sample `idx` of a planned body (its hash is the key)."""
        return self.sampler.cache_request(endpoint, body, seed, idx)

    def parse_reply(self, endpoint: str, body: dict, data: dict[str, Any], url: str) -> list[dict]:
        """Cacheable samples from a reply body; TransientError if it is malformed."""
        return self.sampler.parse(endpoint, body, data, url)

    def honours_n(self, endpoint: str) -> bool:
        """Whether the server returns n choices on `endpoint` (True until the probe says not)."""
        return self.negotiator.honours_n(endpoint)

    def account_batch(self, prompt_tokens: int, completion_tokens: int, discount: float) -> float:
        """Record the usage of Batch API answers (billed at `discount` x the live price)."""
        cost = discount * self.prices.cost(prompt_tokens, completion_tokens)
        self.stats.prompt_tokens += prompt_tokens
        self.stats.completion_tokens += completion_tokens
        self.stats.cost_usd += cost
        return cost


def probe_endpoint(
    base_url: str,
    model: str,
    *,
    tokenizer: str | None = None,
    store: Any = None,
    reprobe: bool = False,
    api_key_env: str | None = None,
) -> dict[str, Any]:
    """Probe (or read the stored probe of) an endpoint for a model: what `iro-bb probe` shows.
    Adds "choice_chat" and "choice_text": the mode `auto` takes for chat and for text prompts."""

    async def go() -> dict[str, Any]:
        p = OpenAIProvider(
            model,
            base_url=base_url,
            store=store,
            tokenizer=tokenizer,
            reprobe=reprobe,
            api_key_env=api_key_env,
        )
        try:
            stored = p.stored_probe() is not None
            caps = dict(await p.probe())
            caps["stored"] = stored
            caps["choice_chat"] = await p.mode_choice(chat_prompts=True)
            caps["choice_text"] = await p.mode_choice(chat_prompts=False)
            caps["warnings"] = sampling_warnings(caps)
            return caps
        finally:
            await p.aclose()

    return asyncio.run(go())
