"""Retrying transient provider failures with tenacity.

Only `TransientError` is retried (429, 408, 409, 5xx, timeouts, resets, malformed replies), with
exponential backoff and full jitter; a `retry_after` carried by the error (from a Retry-After
header) replaces the backoff, capped. Everything else propagates at once. The sleep function is
injectable so tests take no time and can record the waits.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from ...errors import TransientError

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[Any]]

TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def is_transient_status(status: int) -> bool:
    """True for HTTP statuses worth retrying (rate limit, timeout, conflict, any 5xx)."""
    return status in TRANSIENT_STATUS or status >= 500


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` as seconds or an HTTP date."""
    lower = {k.lower(): v for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = lower.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


@dataclass
class RetryPolicy:
    """How transient failures are retried."""

    max_retries: int = 6  # retries after the first attempt (0 = no retries)
    initial: float = 0.5  # first backoff, seconds
    max_backoff: float = 30.0  # cap of one exponential backoff step, seconds
    retry_after_cap: float = 60.0  # cap of a server-given Retry-After, seconds
    jitter: bool = True  # full jitter: wait uniform(0, backoff)

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Wait before retry number `attempt` (1-based) without a Retry-After."""
        base = min(self.max_backoff, self.initial * (2 ** (attempt - 1)))
        if not self.jitter:
            return base
        r = (rng or random).random()
        return base / 2 + r * base / 2  # half fixed, half jitter: never a zero wait

    def wait_for(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        ra = getattr(exc, "retry_after", None)
        if ra is not None:
            return min(float(ra), self.retry_after_cap)
        return self.backoff(state.attempt_number)


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    sleep: Sleep,
    on_retry: Callable[[TransientError, float, int], None] | None = None,
) -> T:
    """Run `fn` until it succeeds, retrying TransientError per `policy`.

    on_retry(error, wait_seconds, attempt) is called before each sleep. When the retries run out
    the last TransientError is raised with "(gave up after N attempts)" appended.
    """

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None and state.next_action is not None:
            exc = state.outcome.exception()
            assert isinstance(exc, TransientError)
            on_retry(exc, state.next_action.sleep, state.attempt_number)

    attempts = 0

    async def attempt() -> T:
        nonlocal attempts
        attempts += 1
        return await fn()

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(TransientError),
        stop=stop_after_attempt(policy.max_retries + 1),
        wait=policy.wait_for,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return await retrying(attempt)
    except TransientError as e:
        if attempts <= 1:
            raise
        err = type(e)(f"{e} (gave up after {attempts} attempts)", retry_after=e.retry_after)
        raise err from None
