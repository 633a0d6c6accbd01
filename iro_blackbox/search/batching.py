"""Merge the calls that many concurrently searched prompts make into one call.

Every prompt runs its own coroutine. When several of them ask the provider (or the value models,
or the grader) for something, `Coalescer` sends ONE call with all their rows and hands each caller
its own slice of the answer. When a call is sent:
- alone (no `Rendezvous`): the calls made in the same event-loop tick travel together;
- in lockstep (a `Rendezvous`, what every search uses): only when every prompt in flight waits on
  a coalesced call, each call with its rows in the order of the prompts (`order_key`), not of
  their arrival. Which rows share a batch (and so the padding and the float sums of a forward
  pass) then never depends on thread timing: which of two worker threads (the model's, the value
  models') finished first, or when the event loop woke. Per tick it does: prompts out of step
  (one finished, a new one started) make several calls at once, and the `hf` provider merges
  calls that queue while a batch runs; two groups of prompts whose calls ended in one loop
  iteration merge too. The rows a local model batches together then change with the timing
  (its logits by ~1e-5, enough to flip a sampled token now and then: tests/test_search.py has a
  provider that batches like `hf`), and a seeded run would not repeat itself.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# the caller's place in a call's rows (run_all sets it to the example's index); ties: arrival
order_key: contextvars.ContextVar[int] = contextvars.ContextVar("iro_order_key", default=0)

_Entry = tuple[int, int, list[Any], "asyncio.Future[list[Any]]"]  # key, arrival, items, future


class Rendezvous:
    """Lockstep for the coroutines of one search: the coalesced calls go out when every member
    waits on one of them (see the module docstring). Members `join` before they start and `leave`
    when done; while there are none, calls go out per tick."""

    def __init__(self) -> None:
        self.members = 0
        self.rounds = 0  # times the waiting calls were sent (tests, stats)
        self._coalescers: list[Coalescer[Any, Any]] = []
        self._scheduled = False

    def register(self, c: Coalescer[Any, Any]) -> None:
        self._coalescers.append(c)

    def join(self, n: int = 1) -> None:
        """n more members (before they start, so none is sent ahead of the others)."""
        self.members += n

    def leave(self) -> None:
        """A member is done: the others may all be waiting on it."""
        self.members -= 1
        try:
            self.check()
        except RuntimeError:  # no running loop: a task closed after its loop
            pass

    def check(self) -> None:
        """Send the waiting calls once every member waits on one."""
        if self._scheduled or not self.members:
            return
        if self._all_waiting():
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._release)

    def _all_waiting(self) -> bool:
        return sum(c.waiting for c in self._coalescers) >= self.members

    def _release(self) -> None:
        self._scheduled = False
        if not self._all_waiting():  # a member joined meanwhile
            return
        self.rounds += 1
        for c in self._coalescers:
            batch = c._take()
            if batch:
                c._start(c._send(batch))


class Coalescer(Generic[T, R]):
    """`await c(items)` -> results for items; calls waiting together share one `fn` call.

    fn(all_items) must return one result per item, in order. If it raises, every caller of that
    batch gets the exception. With a `rendezvous`, calls go out in lockstep (module docstring).
    """

    def __init__(
        self,
        fn: Callable[[list[T]], Awaitable[Sequence[R]]],
        name: str = "call",
        rendezvous: Rendezvous | None = None,
    ):
        self.fn = fn
        self.name = name
        self.calls = 0  # calls of fn made
        self.sizes: list[int] = []  # items per call (for tests and stats)
        self.rendezvous = rendezvous
        if rendezvous is not None:
            rendezvous.register(self)
        self._pending: list[_Entry] = []
        self._arrivals = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def waiting(self) -> int:
        """Callers whose rows have not been sent yet."""
        return len(self._pending)

    async def __call__(self, items: Sequence[T]) -> list[R]:
        items = list(items)
        if not items:
            return []
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[R]] = loop.create_future()
        self._arrivals += 1
        self._pending.append((order_key.get(), self._arrivals, items, fut))
        if self.rendezvous is not None and self.rendezvous.members:
            self.rendezvous.check()
        elif len(self._pending) == 1:
            self._start(self._flush())
        return await fut

    def _start(self, coro: Awaitable[None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[_Entry]:
        """The waiting calls, in caller order (then arrival), without cancelled ones."""
        batch, self._pending = self._pending, []
        return sorted((e for e in batch if not e[3].done()), key=lambda e: (e[0], e[1]))

    async def _flush(self) -> None:
        # let every coroutine woken in this tick add its rows first
        await asyncio.sleep(0)
        if self.rendezvous is not None and self.rendezvous.members:
            self.rendezvous.check()  # members joined meanwhile: the rendezvous sends
            return
        await self._send(self._take())

    async def _send(self, batch: list[_Entry]) -> None:
        if not batch:
            return
        flat = [x for _, _, items, _ in batch for x in items]
        self.calls += 1
        self.sizes.append(len(flat))
        try:
            out = list(await self.fn(flat))
            if len(out) != len(flat):
                raise RuntimeError(
                    f"{self.name} returned {len(out)} results for {len(flat)} requests"
                )
        except asyncio.CancelledError:
            for *_, fut in batch:
                fut.cancel()
            raise
        except Exception as e:  # handed to every caller of this batch
            for *_, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            return
        pos = 0
        for _, _, items, fut in batch:
            part = out[pos : pos + len(items)]
            pos += len(items)
            if not fut.done():
                fut.set_result(part)
