"""Grade cache: repeated (grader, item, text) triples are read from the store, not re-graded.

    grader = CachedGrader(load_grader("tone.json"), store)     # or cached(grader, store)
    grades = await grader.grade(samples, items)                # misses graded, then written
    grader.hits, grader.misses

The key is GradeCacheStore.key(grader.spec_hash, item, text). Failed grades are not cached by
default (a timeout or a dead judge may not happen next time); `cache_errors=True` caches them too.
Identical (item, text) pairs within one batch are graded once.
"""

from __future__ import annotations

from typing import Any

from ..store.cache import GradeCacheStore
from ..store.db import Store
from .base import Grade, Grader
from .common import check_batch


class CachedGrader:
    """Wraps a grader with the store's grade cache (itself a Grader)."""

    def __init__(
        self, grader: Grader, store: Store | GradeCacheStore, *, cache_errors: bool = False
    ):
        self.inner = grader
        self.cache = store if isinstance(store, GradeCacheStore) else GradeCacheStore(store)
        self.cache_errors = cache_errors
        self.hits = 0
        self.misses = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def spec(self) -> dict[str, Any]:
        return self.inner.spec

    @property
    def spec_hash(self) -> str:
        return self.inner.spec_hash

    def __getattr__(self, attr: str) -> Any:  # check_items, close, ... of the wrapped grader
        return getattr(self.inner, attr)

    async def grade(self, samples: list[str], items: list[dict[str, Any]]) -> list[Grade]:
        check_batch(f"grader '{self.name}'", samples, items)
        h = self.inner.spec_hash
        keys = [GradeCacheStore.key(h, it, s) for s, it in zip(samples, items, strict=True)]
        found = self.cache.get_many(list(dict.fromkeys(keys)))
        todo: dict[str, int] = {}  # key -> index of its first occurrence
        for i, k in enumerate(keys):
            if k not in found and k not in todo:
                todo[k] = i
        fresh: dict[str, Grade] = {}
        if todo:
            idx = list(todo.values())
            graded = await self.inner.grade([samples[i] for i in idx], [items[i] for i in idx])
            for k, g in zip(todo, graded, strict=True):
                fresh[k] = g
                if g.error is None or self.cache_errors:
                    self.cache.put(k, h, g.score, g.error, g.details)
        out = []
        for k in keys:
            if k in fresh:
                out.append(fresh[k])
                self.misses += 1
            else:
                score, error = found[k]
                fallback = getattr(self.inner, "error_score", 0.0)
                out.append(
                    Grade(
                        score=fallback if score is None else score,
                        error=error,
                        details={"cached": True},
                    )
                )
                self.hits += 1
        return out

    async def aclose(self) -> None:
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()


def cached(grader: Grader, store: Store | GradeCacheStore, **kw: Any) -> CachedGrader:
    """`CachedGrader(grader, store, **kw)`."""
    return CachedGrader(grader, store, **kw)
