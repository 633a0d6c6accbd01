"""Transport policy of the openai provider: the official `openai` SDK client, and what surrounds
each request it sends: the budget check, the rate limiter, the concurrency cap, our retries.

The SDK's own retries are off (`max_retries=0`): tenacity (retry.py) retries every transient
failure (429 and 5xx with the server's Retry-After honoured, resets, hangs past the timeout, and a
200 whose body is malformed JSON, which the SDK raises as a JSONDecodeError and never retries),
and failures.py sorts what the SDK raises into one-line errors. A request body is the provider's
own dict (wire.py): the fields the SDK's `create` names go as arguments, every other field (the
dialects' continue_final_message, add_generation_prompt, vLLM's return_token_ids, top_k, ...)
through `extra_body`; message-level flags ("prefix", "partial") ride in the messages, which the
SDK sends as given.

The API key goes to the SDK client only (it sends it in the Authorization header); it is in no
message, log line, cache key or description.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from typing import Any, TypeVar

import openai

from ...errors import BudgetExceeded, PermanentError, TransientError
from ..base import ProviderStats, Usage
from ..budget import BudgetGuard, Hold
from .failures import Scrubber, TransientHTTPError, malformed, sort_failure
from .modes import CHAT, COMPLETIONS
from .pricing import Prices
from .ratelimit import RateLimiter
from .retry import RetryPolicy, call_with_retries

log = logging.getLogger("iro_blackbox.openai")
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[Any]]

DUMMY_KEY = "sk-no-key-required"  # sent to servers that need none (local llama.cpp, vLLM)

# Set per extend()/score() call: once one request of the call fails for good, the requests of
# the same call still queued for a slot are not sent (the first error is what the caller sees).
CALL_FAILED: ContextVar[list[bool] | None] = ContextVar("iro_openai_call_failed", default=None)


class Skipped(Exception):
    """A queued request not sent because another request of the same call failed for good."""


async def gather_or_stop(coros: list[Coroutine[Any, Any, Any]]) -> list[Any]:
    """Like gather; after the first failure the requests not yet sent are skipped, while those
    already in flight are awaited (their answers are paid for: they reach the cache), then the
    first real error is raised."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    if not tasks:
        return []
    failed = CALL_FAILED.get()
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        if pending and any(t.exception() is not None for t in done):
            if failed is not None:
                failed[0] = True
            await asyncio.wait(pending)
        errors = [t.exception() for t in tasks if t.exception() is not None]
        if errors:
            raise next((e for e in errors if not isinstance(e, Skipped)), errors[0])
        return [t.result() for t in tasks]
    finally:
        for t in tasks:
            if not t.done():
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _create_params(fn: Callable[..., Any]) -> frozenset[str]:
    """The body fields an SDK `create` method takes as arguments."""
    skip = {"self", "extra_headers", "extra_query", "extra_body", "timeout", "stream"}
    return frozenset(p for p in inspect.signature(fn).parameters if p not in skip)


class Transport:
    """Sends the provider's requests through one AsyncOpenAI client per event loop (an HTTP
    connection pool cannot cross loops), under the provider's budget, limiter and retries."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout: float,
        concurrency: int,
        policy: RetryPolicy,
        limiter: RateLimiter,
        sleep: Sleep,
        stats: ProviderStats,
        prices: Prices,
        budget: BudgetGuard | None = None,
    ):
        self.base_url = base_url
        self.timeout = timeout
        self.concurrency = concurrency
        self.policy = policy
        self.limiter = limiter
        self.sleep = sleep
        self.stats = stats
        self.prices = prices
        self.budget = budget
        self.scrub = Scrubber(api_key)
        self._key = api_key or DUMMY_KEY
        self._client: openai.AsyncOpenAI | None = None
        self._sem: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._params: dict[str, frozenset[str]] = {}

    # -- the SDK client ---------------------------------------------------------------------
    def client(self) -> openai.AsyncOpenAI:
        """The SDK client of the running event loop (its own retries off)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = openai.AsyncOpenAI(
                base_url=self.base_url, api_key=self._key, max_retries=0, timeout=self.timeout
            )
            self._sem = asyncio.Semaphore(self.concurrency)
            self._loop = loop
        return self._client

    def _semaphore(self) -> asyncio.Semaphore:
        self.client()
        assert self._sem is not None
        return self._sem

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await client.close()
        # else its loop is gone: its connections went with it

    async def call(
        self, fn: Callable[[openai.AsyncOpenAI], Awaitable[T]], method: str, path: str
    ) -> T:
        """One SDK call (no retries), its failures sorted into TransientError / PermanentError."""
        url = self.base_url + path
        try:
            return await fn(self.client())
        except (openai.OpenAIError, ValueError) as e:
            sorted_ = sort_failure(e, method, url, self.timeout, self.scrub)
            if sorted_ is e:
                raise
            raise sorted_ from None

    async def send_json(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a request body to /completions or /chat/completions; the reply as a dict."""
        resource = self._resource(endpoint)
        known = self._params.get(endpoint)
        if known is None:
            known = self._params[endpoint] = _create_params(resource.create)
        args = {k: v for k, v in body.items() if k in known}
        extra = {k: v for k, v in body.items() if k not in known}
        reply = await self.call(
            lambda c: self._resource(endpoint, c).create(**args, extra_body=extra or None),
            "POST",
            endpoint,
        )
        data = reply.to_dict() if isinstance(reply, openai.BaseModel) else reply
        if not isinstance(data, dict):
            text = data if isinstance(data, str) else repr(data)
            raise malformed(self.base_url + endpoint, 200, text, self.scrub)
        return data

    def _resource(self, endpoint: str, client: openai.AsyncOpenAI | None = None) -> Any:
        c = client or self.client()
        if endpoint == COMPLETIONS:
            return c.completions
        if endpoint == CHAT:
            return c.chat.completions
        raise ValueError(f"openai: no SDK resource for endpoint {endpoint!r}")

    # -- the policy around a request ----------------------------------------------------------
    def _count_retry(self, err: TransientError, wait: float, attempt: int) -> None:
        self.stats.retries += 1

    def _on_retry(self, err: TransientError, wait: float, attempt: int) -> None:
        self.stats.retries += 1
        log.warning("retry %d in %.2fs after: %s", attempt, wait, self.scrub(str(err)))

    async def post(
        self,
        endpoint: str,
        body: dict[str, Any],
        est_input: int,
        max_output: int,
        policy: RetryPolicy | None = None,
        quiet: bool = False,
    ) -> tuple[dict[str, Any], Hold | None]:
        """One logical request: budget, rate limit, concurrency cap, retries of transient
        failures. Returns the reply and the budget hold its real usage settles (`account`)."""
        sem = self._semaphore()
        tries = [0]  # a retry after a 429 already waited the server's Retry-After

        async def attempt() -> tuple[dict[str, Any], Hold | None]:
            tries[0] += 1
            await self.limiter.acquire(est_input + max_output, retrying=tries[0] > 1)
            failed = CALL_FAILED.get()
            async with sem:
                if failed is not None and failed[0]:
                    raise Skipped()
                hold = None
                if self.budget is not None:
                    try:
                        hold = self.budget.reserve(est_input, max_output)
                    except BudgetExceeded:
                        if failed is not None:
                            failed[0] = True
                        raise
                self.stats.requests += 1
                try:
                    return await self.send_json(endpoint, body), hold
                except BaseException as e:
                    if isinstance(e, TransientHTTPError) and e.status == 429:
                        self.limiter.throttle(e.retry_after)  # every caller slows down
                    if hold is not None and self.budget is not None:
                        self.budget.settle(hold)  # a refused or lost request: counted, not billed
                    if isinstance(e, PermanentError) and failed is not None:
                        failed[0] = True
                    raise

        on_retry = self._count_retry if quiet else self._on_retry
        return await call_with_retries(attempt, policy or self.policy, self.sleep, on_retry)

    def account(self, usage: Usage, hold: Hold | None, est_tokens: int) -> float:
        """Record a reply's usage and cost (stats, budget ledger, rate limiter); its cost."""
        self.stats.prompt_tokens += usage.prompt_tokens
        self.stats.completion_tokens += usage.completion_tokens
        cost = self.prices.cost(usage.prompt_tokens, usage.completion_tokens)
        if hold is not None and self.budget is not None:
            self.budget.settle(hold, usage.prompt_tokens, usage.completion_tokens)
        self.stats.cost_usd += cost
        self.limiter.settle(est_tokens, usage.prompt_tokens + usage.completion_tokens)
        return cost
