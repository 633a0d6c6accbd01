"""What endpoints were found to do: one probe result per (base URL, model, tokenizer), reused by
every later run instead of probing again."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..utils import stable_hash
from .db import Store
from .schema import Probe, utcnow


class ProbeStore:
    def __init__(self, store: Store):
        self.store = store

    @staticmethod
    def key(base_url: str, model: str, tokenizer: str | None, version: int) -> str:
        return stable_hash(
            {"base_url": base_url, "model": model, "tokenizer": tokenizer, "v": version}
        )

    def get(self, key: str) -> dict[str, Any] | None:
        with self.store.session() as s:
            row = s.get(Probe, key)
            return None if row is None else dict(row.result)

    def put(self, key: str, base_url: str, model: str, result: dict[str, Any]) -> None:
        """Record (or replace) a probe result."""
        try:
            with self.store.session() as s:
                row = s.get(Probe, key)
                if row is None:
                    s.add(Probe(key=key, base_url=base_url, model=model, result=result))
                else:
                    row.result, row.created_at = result, utcnow()
        except IntegrityError:  # another process recorded the same endpoint first
            pass

    def latest(self, base_url: str, model: str, version: int) -> dict[str, Any] | None:
        """The newest stored probe of this endpoint and model (any tokenizer) of `version`."""
        with self.store.session() as s:
            rows = s.scalars(
                select(Probe)
                .where(Probe.base_url == base_url, Probe.model == model)
                .order_by(Probe.created_at.desc())
            ).all()
            for row in rows:
                if isinstance(row.result, dict) and row.result.get("v") == version:
                    return dict(row.result)
        return None
