"""Requests-per-minute and tokens-per-minute limits as two token buckets.

Each bucket holds at most one minute's allowance and refills continuously. A request takes one
request token and its estimated tokens; when a bucket is short, the caller sleeps until it has
refilled enough. `settle()` corrects the token bucket once the real usage is known.
Clock and sleep are injectable, so tests run without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ...errors import ConfigError


class _Bucket:
    def __init__(self, per_minute: float, now: float):
        self.capacity = float(per_minute)
        self.rate = float(per_minute) / 60.0  # per second
        self.level = self.capacity
        self.stamp = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` is available (0 if it is now)."""
        amount = min(amount, self.capacity)
        return 0.0 if self.level >= amount else (amount - self.level) / self.rate


class RateLimiter:
    """Limits requests and tokens per minute (None = unlimited)."""

    def __init__(
        self,
        rpm: int | None = None,
        tpm: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ):
        for name, v in (("rpm", rpm), ("tpm", tpm)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ConfigError(f"{name} must be an integer >= 1 or None, got {v!r}")
        self.clock = clock
        self.sleep = sleep
        now = clock()
        self._requests = _Bucket(rpm, now) if rpm else None
        self._tokens = _Bucket(tpm, now) if tpm else None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: Any = None
        self.waited = 0.0  # total seconds slept (for stats and tests)

    @property
    def active(self) -> bool:
        return self._requests is not None or self._tokens is not None

    def _get_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until one request with about `tokens` tokens may be sent, and take them."""
        if not self.active:
            return
        async with self._get_lock():  # first come, first served
            while True:
                now = self.clock()
                wait = 0.0
                for bucket, amount in ((self._requests, 1), (self._tokens, tokens)):
                    if bucket is not None:
                        bucket.refill(now)
                        wait = max(wait, bucket.wait_for(amount))
                if wait <= 0:
                    break
                self.waited += wait
                await self.sleep(wait)
            if self._requests is not None:
                self._requests.level -= 1
            if self._tokens is not None:
                self._tokens.level -= min(tokens, self._tokens.capacity)

    def settle(self, estimated: int, actual: int) -> None:
        """Give back (or take more of) the token allowance once real usage is known."""
        if self._tokens is not None and actual >= 0:
            b = self._tokens
            b.level = min(b.capacity, b.level + min(estimated, b.capacity) - actual)
