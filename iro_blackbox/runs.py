"""Reading runs back from the store (used by `iro-bb runs` and the report)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from .errors import InputError
from .store import Iteration, Run, Store, open_store


def _store(db: str | Store | None) -> Store:
    return db if isinstance(db, Store) else open_store(db)


def find_run(store: Store, run: str | int) -> Run:
    """A run by name or numeric id, or InputError listing what exists."""
    with store.session() as s:
        row = s.scalar(select(Run).where(Run.name == str(run)))
        if row is None and str(run).isdigit():
            row = s.get(Run, int(run))
        if row is None:
            names = s.scalars(select(Run.name).order_by(Run.id.desc()).limit(5)).all()
            hint = f" (recent: {', '.join(names)})" if names else " (the store has no runs yet)"
            raise InputError(f"no run named '{run}' in {store.display_url}{hint}")
        return row


def list_runs(db: str | Store | None = None) -> list[dict[str, Any]]:
    store = _store(db)
    out = []
    with store.session() as s:
        for r in s.scalars(select(Run).order_by(Run.id.desc())):
            its = s.scalars(select(Iteration).where(Iteration.run_id == r.id)).all()
            rewards = [i.metrics.get("eval_mean_reward") for i in its if i.metrics]
            rewards = [x for x in rewards if x is not None]
            out.append(
                {
                    "id": r.id,
                    "name": r.name,
                    "status": r.status,
                    "model": r.config.get("model"),
                    "provider": r.config.get("provider"),
                    "iterations": max((i.t for i in its), default=0),
                    "best_reward": max(rewards) if rewards else None,
                    "created": r.created_at.strftime("%Y-%m-%d %H:%M"),
                }
            )
    return out


def run_summary(run: str | int, db: str | Store | None = None) -> dict[str, Any]:
    store = _store(db)
    r = find_run(store, run)
    with store.session() as s:
        its = s.scalars(
            select(Iteration).where(Iteration.run_id == r.id).order_by(Iteration.t)
        ).all()
        return {
            "id": r.id,
            "name": r.name,
            "status": r.status,
            "out_dir": r.out_dir,
            "config": r.config,
            "metrics": r.metrics,
            "iterations": [{"t": i.t, "stage": i.stage, "metrics": i.metrics} for i in its],
        }
