"""Reading runs back (`iro-bb runs list / show`, the API): thin views over the run repository."""

from __future__ import annotations

from typing import Any

from ..store import RunRepository, Store, open_store


def _repo(db: str | Store | None) -> RunRepository:
    return RunRepository(db if isinstance(db, Store) else open_store(db))


def list_runs(db: str | Store | None = None) -> list[dict[str, Any]]:
    """Every run, newest first: name, status, model, provider, iterations, best held-out reward."""
    out = []
    for r, its in _repo(db).list():
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
    """One run: its configuration, summary metrics and iterations."""
    repo = _repo(db)
    r = repo.find(run)
    return {
        "id": r.id,
        "name": r.name,
        "status": r.status,
        "out_dir": r.out_dir,
        "config": r.config,
        "metrics": r.metrics,
        "spent": dict(r.spent or {}),
        "error": r.error,
        "iterations": repo.iterations(r.id),
    }


def attach_compute(run: str | int, result: dict[str, Any], db: str | Store | None = None) -> Any:
    """Keep an `eval --budgets` result in the run's folder and redraw its report with the
    equal-compute picture (IRO at each W*K beside Best-of-n); the report's path, or None for a
    run without a folder or a result of another model the run's value models steered (the
    run's report shows its own policy only)."""
    if result.get("steered"):
        return None
    import json
    from pathlib import Path

    from .metrics import summary
    from .report import COMPUTE_FILE, write_report

    repo = _repo(db)
    row = repo.find(run)
    if not row.out_dir:
        return None
    out = Path(row.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / COMPUTE_FILE).write_text(json.dumps(result, indent=2, default=str))
    iterations = repo.iterations(row.id)
    return write_report(
        row.name, dict(row.config), iterations, summary(iterations), out, repo.spent(row.id)
    )
