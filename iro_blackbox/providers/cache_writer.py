"""Write-behind for the request cache: responses are queued as they arrive and written in batches
by one background writer (in a worker thread), so SQLite commits never stall the event loop and
many concurrent responses share one transaction. `flush()` waits until everything queued is
written; the provider flushes before extend()/score() return, so a finished call is on disk.
"""

from __future__ import annotations

import asyncio
from typing import Any

Item = tuple[str, dict[str, Any], dict[str, Any]]  # (key, request, response)


class CacheWriter:
    """Batches RequestCacheStore.put_many calls for one provider name."""

    def __init__(self, cache: Any, provider: str):
        self.cache = cache
        self.provider = provider
        self._pending: list[Item] = []
        self._task: asyncio.Task | None = None
        self._error: BaseException | None = None
        self.batches = 0  # transactions written (for stats and tests)

    def add(self, items: list[Item]) -> None:
        """Queue items; starts the writer if it is idle."""
        if not items:
            return
        self._pending.extend(items)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self.cache.put_many, self.provider, batch)
                self.batches += 1
            except BaseException as e:  # surfaced by flush()
                self._error = e
                return

    async def flush(self) -> None:
        """Wait until everything queued so far is written; raise a write error if one happened."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        if self._pending:  # queued after the writer finished: write now
            self._task = asyncio.ensure_future(self._run())
            await asyncio.shield(self._task)
        if self._error is not None:
            err, self._error = self._error, None
            raise err
