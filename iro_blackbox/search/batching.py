"""Merge the calls that many concurrently searched prompts make in the same moment into one call.

Every prompt runs its own coroutine. When several of them ask the provider (or the value models,
or the grader) for something in the same event-loop tick, `Coalescer` sends ONE call with all
their rows and hands each caller its own slice of the answer. Prompts that move in step (they
start together, and every stage is coalesced) therefore share one provider call per step: one
forward batch for a local model, one pass through the concurrency limit for an API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """`await c(items)` -> results for items; calls made in the same tick share one `fn` call.

    fn(all_items) must return one result per item, in order. If it raises, every caller of that
    batch gets the exception.
    """

    def __init__(self, fn: Callable[[list[T]], Awaitable[Sequence[R]]], name: str = "call"):
        self.fn = fn
        self.name = name
        self.calls = 0  # calls of fn made
        self.sizes: list[int] = []  # items per call (for tests and stats)
        self._pending: list[tuple[list[T], asyncio.Future[list[R]]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, items: Sequence[T]) -> list[R]:
        items = list(items)
        if not items:
            return []
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[R]] = loop.create_future()
        self._pending.append((items, fut))
        if len(self._pending) == 1:
            task = loop.create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await fut

    async def _flush(self) -> None:
        # let every coroutine woken in this tick add its rows first
        await asyncio.sleep(0)
        batch, self._pending = self._pending, []
        batch = [(items, fut) for items, fut in batch if not fut.done()]  # drop cancelled callers
        if not batch:
            return
        flat = [x for items, _ in batch for x in items]
        self.calls += 1
        self.sizes.append(len(flat))
        try:
            out = list(await self.fn(flat))
            if len(out) != len(flat):
                raise RuntimeError(
                    f"{self.name} returned {len(out)} results for {len(flat)} requests"
                )
        except asyncio.CancelledError:
            for _, fut in batch:
                fut.cancel()
            raise
        except Exception as e:  # handed to every caller of this batch
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            return
        pos = 0
        for items, fut in batch:
            part = out[pos : pos + len(items)]
            pos += len(items)
            if not fut.done():
                fut.set_result(part)
