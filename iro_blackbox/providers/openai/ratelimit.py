"""Requests-per-minute and tokens-per-minute limits as two token buckets that adapt to 429s.

Each bucket holds at most one minute's allowance and refills continuously. A request takes one
request token and its estimated tokens; when a bucket is short, the caller sleeps until it has
refilled enough. `settle()` corrects the token bucket once the real usage is known.

A 429 from the server (`throttle(retry_after)`) means the limits given are more than the server
allows now: every caller waits until the server's Retry-After has passed (not only the one request
that got it), and the refill rates are halved (down to 1/16 of what was given). Each answered
request (`settle`) wins back 1/16 of the given rate, so the limiter settles just under what the
server takes. Without --rpm / --tpm only the shared wait applies.

Clock and sleep are injectable, so tests run without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ...errors import ConfigError

MIN_FACTOR = 1 / 16  # the lowest share of the given rates a run of 429s can bring them to
RECOVER = 1 / 16  # share of the given rates won back with each answered request


class _Bucket:
    def __init__(self, per_minute: float, now: float):
        self.capacity = float(per_minute)
        self.base_rate = float(per_minute) / 60.0  # per second, as given
        self.level = self.capacity
        self.stamp = now

    def refill(self, now: float, factor: float) -> None:
        rate = self.base_rate * factor
        self.level = min(self.capacity, self.level + max(0.0, now - self.stamp) * rate)
        self.stamp = now

    def wait_for(self, amount: float, factor: float) -> float:
        """Seconds until `amount` is available (0 if it is now)."""
        amount = min(amount, self.capacity)
        return 0.0 if self.level >= amount else (amount - self.level) / (self.base_rate * factor)


class RateLimiter:
    """Limits requests and tokens per minute (None = unlimited), adapting to 429s."""

    def __init__(
        self,
        rpm: int | None = None,
        tpm: int | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
    ):
        for name, v in (("rpm", rpm), ("tpm", tpm)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ConfigError(f"{name} must be an integer >= 1 or None, got {v!r}")
        self.rpm, self.tpm = rpm, tpm
        self.clock = clock or time.monotonic
        self.sleep = sleep or asyncio.sleep
        now = self.clock()
        self._requests = _Bucket(rpm, now) if rpm else None
        self._tokens = _Bucket(tpm, now) if tpm else None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: Any = None
        self.factor = 1.0  # share of the given rates in force (lowered by 429s)
        self.resume_at = float("-inf")  # no request starts before this time (a 429's wait)
        # accounting (stats and tests)
        self.waited = 0.0  # total seconds slept
        self.granted = 0  # requests let through
        self.throttled = 0  # 429s reported

    @property
    def active(self) -> bool:
        return self._requests is not None or self._tokens is not None

    @property
    def rates(self) -> dict[str, float | None]:
        """The limits in force now, per minute (None: no limit)."""
        return {
            "rpm": self.rpm * self.factor if self.rpm else None,
            "tpm": self.tpm * self.factor if self.tpm else None,
        }

    def _get_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def acquire(self, tokens: int = 0, *, retrying: bool = False) -> None:
        """Wait until one request with about `tokens` tokens may be sent, and take them.
        `retrying`: the request that got a 429 itself, whose backoff already waited the server's
        Retry-After (it does not wait for it twice)."""
        async with self._get_lock():  # first come, first served
            slept_until = float("-inf")  # a pause slept through is over, whatever the clock says
            while True:
                now = self.clock()
                wait = 0.0 if retrying else max(0.0, self.resume_at - max(now, slept_until))
                for bucket, amount in ((self._requests, 1), (self._tokens, tokens)):
                    if bucket is not None:
                        bucket.refill(now, self.factor)
                        wait = max(wait, bucket.wait_for(amount, self.factor))
                if wait <= 0:
                    break
                self.waited += wait
                slept_until = max(now, slept_until) + wait
                await self.sleep(wait)
            if self._requests is not None:
                self._requests.level -= 1
            if self._tokens is not None:
                self._tokens.level -= min(tokens, self._tokens.capacity)
            self.granted += 1

    def settle(self, estimated: int, actual: int) -> None:
        """A request was answered: give back (or take more of) the token allowance once its real
        usage is known, and win back some of the rate a 429 took."""
        if self._tokens is not None and actual >= 0:
            b = self._tokens
            b.level = min(b.capacity, b.level + min(estimated, b.capacity) - actual)
        self.factor = min(1.0, self.factor + RECOVER)

    def throttle(self, retry_after: float | None) -> None:
        """The server answered 429: nobody starts before `retry_after` seconds have passed, and
        the rates are halved. The buckets are emptied: what they held was more than the server
        takes now."""
        self.throttled += 1
        now = self.clock()
        if retry_after is not None and retry_after > 0:
            self.resume_at = max(self.resume_at, now + retry_after)
        if self.active:
            self.factor = max(MIN_FACTOR, self.factor / 2)
            for bucket in (self._requests, self._tokens):
                if bucket is not None:
                    bucket.refill(now, self.factor)
                    bucket.level = min(bucket.level, 0.0)

    def describe(self) -> dict[str, Any]:
        return {"rpm": self.rpm, "tpm": self.tpm, "in_force": self.rates,
                "throttled": self.throttled, "waited_s": round(self.waited, 3)}  # fmt: skip
