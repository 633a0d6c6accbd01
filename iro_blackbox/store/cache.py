"""Request cache and grade cache on top of the store.

Keys are sha256 hashes of the canonical JSON of everything that changes the answer. Values are
plain JSON. Writes are insert-or-ignore, so two processes racing on one key are harmless.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from ..utils import stable_hash
from .db import Store
from .schema import GradeCache, RequestCache


class RequestCacheStore:
    """Provider responses by key. `enabled=False` turns reads off (writes still happen)."""

    def __init__(self, store: Store, enabled: bool = True):
        self.store = store
        self.enabled = enabled

    @staticmethod
    def key(request: dict[str, Any]) -> str:
        return stable_hash(request)

    def get(self, key: str) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        with self.store.session() as s:
            row = s.get(RequestCache, key)
            if row is None:
                return None
            s.execute(
                update(RequestCache)
                .where(RequestCache.key == key)
                .values(hits=RequestCache.hits + 1)
            )
            return row.response

    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """Responses of the keys present (one query per 500 keys); counts a hit for each."""
        if not self.enabled or not keys:
            return {}
        out: dict[str, dict[str, Any]] = {}
        with self.store.session() as s:
            for i in range(0, len(keys), 500):
                part = keys[i : i + 500]
                rows = s.execute(
                    select(RequestCache.key, RequestCache.response).where(
                        RequestCache.key.in_(part)
                    )
                ).all()
                out.update({k: r for k, r in rows})
            if out:
                found = list(out)
                for i in range(0, len(found), 500):
                    s.execute(
                        update(RequestCache)
                        .where(RequestCache.key.in_(found[i : i + 500]))
                        .values(hits=RequestCache.hits + 1)
                    )
        return out

    def put_many(
        self, provider: str, items: list[tuple[str, dict[str, Any], dict[str, Any]]]
    ) -> None:
        """put() for many (key, request, response) in one transaction (existing keys are kept)."""
        if not items:
            return
        try:
            with self.store.session() as s:
                keys = [k for k, _, _ in items]
                have = set(s.scalars(select(RequestCache.key).where(RequestCache.key.in_(keys))))
                for key, request, response in items:
                    if key not in have:
                        have.add(key)
                        s.add(
                            RequestCache(
                                key=key, provider=provider, request=request, response=response
                            )
                        )
        except IntegrityError:
            for key, request, response in items:  # a race with another writer: one by one
                self.put(key, provider, request, response)

    def put(
        self, key: str, provider: str, request: dict[str, Any], response: dict[str, Any]
    ) -> None:
        try:
            with self.store.session() as s:
                if s.get(RequestCache, key) is None:
                    s.add(
                        RequestCache(key=key, provider=provider, request=request, response=response)
                    )
        except IntegrityError:
            pass  # another worker wrote the same key first

    def stats(self) -> dict[str, Any]:
        with self.store.session() as s:
            rows = s.execute(
                select(
                    RequestCache.provider,
                    func.count(),
                    func.coalesce(func.sum(RequestCache.hits), 0),
                ).group_by(RequestCache.provider)
            ).all()
        by_provider = {p: {"entries": int(n), "hits": int(h)} for p, n, h in rows}
        return {
            "entries": sum(v["entries"] for v in by_provider.values()),
            "hits": sum(v["hits"] for v in by_provider.values()),
            "by_provider": by_provider,
        }

    def clear(self, provider: str | None = None) -> int:
        with self.store.session() as s:
            q = delete(RequestCache)
            if provider:
                q = q.where(RequestCache.provider == provider)
            return s.execute(q).rowcount or 0


class GradeCacheStore:
    """Grades by (grader hash, example, text)."""

    def __init__(self, store: Store, enabled: bool = True):
        self.store = store
        self.enabled = enabled

    @staticmethod
    def key(grader_hash: str, item: dict[str, Any], text: str) -> str:
        return stable_hash([grader_hash, item, text])

    def get(self, key: str) -> tuple[float | None, str | None] | None:
        if not self.enabled:
            return None
        with self.store.session() as s:
            row = s.get(GradeCache, key)
            return None if row is None else (row.score, row.error)

    def get_many(self, keys: list[str]) -> dict[str, tuple[float | None, str | None]]:
        if not self.enabled or not keys:
            return {}
        out: dict[str, tuple[float | None, str | None]] = {}
        with self.store.session() as s:
            for i in range(0, len(keys), 500):
                part = keys[i : i + 500]
                for row in s.scalars(select(GradeCache).where(GradeCache.key.in_(part))):
                    out[row.key] = (row.score, row.error)
        return out

    def put(
        self,
        key: str,
        grader_hash: str,
        score: float | None,
        error: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        try:
            with self.store.session() as s:
                if s.get(GradeCache, key) is None:
                    s.add(
                        GradeCache(
                            key=key,
                            grader_hash=grader_hash,
                            score=score,
                            error=error,
                            details=details or {},
                        )
                    )
        except IntegrityError:
            pass
