"""Batch the generations that concurrent HTTP requests ask for into few `policy.agenerate` calls.

Requests arriving within `window` seconds of each other are grouped: every group shares search
parameters (max_tokens, w, k, l, stop, temperature, top_p) and a seed, and becomes ONE
`agenerate(prompts, ...)` call, so its prompts are searched together (their provider rows share a
forward batch and their prefixes share value-model calls). Groups run concurrently; a local
provider also coalesces the extend() calls of concurrent groups.

Seeds: a request without a seed gets a fresh random one (as with OpenAI, answers vary between
calls); all unseeded rows of a window share one random seed, except that a prompt appears at most
once per group (a second copy, e.g. n=2, goes to another group with its own seed, so the copies
differ). Seeded rows are grouped by seed, and identical (prompt, parameters, seed) rows are
computed once. `serial=True` turns batching off (one prompt at a time): the baseline of the
benchmark.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from ..utils import canonical_json

log = logging.getLogger("iro_blackbox.serve")


@dataclass(frozen=True)
class GenParams:
    """Search parameters shared by every prompt of one agenerate call."""

    max_tokens: int | None = None
    w: int | None = None
    k: int | None = None
    l: int | None = None  # noqa: E741
    stop: tuple[str, ...] = ()
    temperature: float | None = None
    top_p: float | None = None

    def kwargs(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if v is not None}
        d["stop"] = list(self.stop) or None
        if d["stop"] is None:
            del d["stop"]
        return d


@dataclass
class _Item:
    prompt: Any
    params: GenParams
    seed: int | None
    future: asyncio.Future
    key: str = ""


@dataclass
class BatchStats:
    calls: int = 0  # agenerate calls made
    prompts: int = 0  # prompts generated
    max_batch: int = 0  # largest agenerate call
    sizes: list[int] = field(default_factory=list)


def _supports(policy: Any, name: str) -> bool:
    try:
        sig = inspect.signature(policy.agenerate)
    except (TypeError, ValueError):
        return True
    return name in sig.parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()
    )


class Batcher:
    """`await batcher.generate(prompts, params, seeds)` -> one Generation per prompt."""

    def __init__(
        self,
        policy: Any,
        *,
        window: float = 0.01,
        max_batch: int = 32,
        serial: bool = False,
    ):
        self.policy = policy
        self.window = window
        self.max_batch = max(1, max_batch)
        self.serial = serial
        self.stats = BatchStats()
        self._pending: list[_Item] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()
        self._serial_lock: asyncio.Lock | None = None
        self._top_p = _supports(policy, "top_p")
        self._rng = random.SystemRandom()

    async def generate(
        self, prompts: list[Any], params: GenParams, seeds: list[int | None]
    ) -> list[Any]:
        loop = asyncio.get_running_loop()
        items = [
            _Item(p, params, s, loop.create_future(), canonical_json([p, asdict(params), s]))
            for p, s in zip(prompts, seeds, strict=True)
        ]
        if self.serial:
            return [await self._serial(it) for it in items]
        self._pending.extend(items)
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.window, self._flush)
        # a client that goes away must not cancel the shared batch: shield each future
        return list(await asyncio.gather(*(asyncio.shield(it.future) for it in items)))

    async def _serial(self, item: _Item) -> Any:
        if self._serial_lock is None:
            self._serial_lock = asyncio.Lock()
        async with self._serial_lock:
            seed = item.seed if item.seed is not None else self._rng.randrange(2**31)
            out = await self._call([item.prompt], item.params, seed)
            return out[0]

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        items, self._pending = self._pending, []
        for group, seed in self._groups(items):
            task = asyncio.get_running_loop().create_task(self._run(group, seed))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _groups(self, items: list[_Item]) -> list[tuple[list[list[_Item]], int]]:
        """[(rows, seed)]: rows[i] are items computed by the i-th prompt of one agenerate call
        (identical seeded items share one row)."""
        out: list[tuple[list[list[_Item]], int]] = []
        by_key: dict[tuple[GenParams, int | None], list[list[list[_Item]]]] = {}
        for it in items:
            groups = by_key.setdefault((it.params, it.seed), [])
            placed = False
            for g in groups:
                prompt_key = canonical_json(it.prompt)
                same = next((row for row in g if canonical_json(row[0].prompt) == prompt_key), None)
                if same is not None:
                    if it.seed is not None:  # same prompt, params, seed: same answer
                        same.append(it)
                        placed = True
                        break
                    continue  # unseeded duplicate: another group, another seed
                if len(g) < self.max_batch:
                    g.append([it])
                    placed = True
                    break
            if not placed:
                groups.append([[it]])
        for (_, seed), groups in by_key.items():
            for g in groups:
                out.append((g, seed if seed is not None else self._rng.randrange(2**31)))
        return out

    async def _run(self, rows: list[list[_Item]], seed: int) -> None:
        params = rows[0][0].params
        try:
            gens = await self._call([row[0].prompt for row in rows], params, seed)
        except BaseException as e:  # every waiter of this group gets the error
            for row in rows:
                for it in row:
                    if not it.future.done():
                        it.future.set_exception(e)
            if not isinstance(e, Exception):
                raise
            return
        for row, g in zip(rows, gens, strict=True):
            for it in row:
                if not it.future.done():
                    it.future.set_result(g)

    async def _call(self, prompts: list[Any], params: GenParams, seed: int) -> list[Any]:
        kw = params.kwargs()
        if not self._top_p:
            kw.pop("top_p", None)
        self.stats.calls += 1
        self.stats.prompts += len(prompts)
        self.stats.max_batch = max(self.stats.max_batch, len(prompts))
        self.stats.sizes.append(len(prompts))
        gens = await self.policy.agenerate(prompts, seed=seed, **kw)
        if len(gens) != len(prompts):
            raise RuntimeError(
                f"policy returned {len(gens)} generations for {len(prompts)} prompts"
            )
        return list(gens)

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
