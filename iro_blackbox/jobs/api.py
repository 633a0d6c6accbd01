"""Submitting and managing jobs in a store (what `iro-bb jobs ...` calls)."""

from __future__ import annotations

from typing import Any

from ..store import JobQueue, Store, open_store
from .kinds import prepare_args


def _queue(db: str | Store | None) -> JobQueue:
    return JobQueue(db if isinstance(db, Store) else open_store(db))


def submit(kind: str, args: dict[str, Any], db: str | Store | None = None) -> int:
    """Queue a job of a registered kind and return its id at once (arguments checked first)."""
    queue = _queue(db)
    args = prepare_args(kind, args)
    job_id = queue.submit(kind, args)
    finalized = prepare_args(kind, args, job_id=job_id)
    if finalized != args:
        queue.update_args(job_id, finalized)
    return job_id


def get_job(job_id: int, db: str | Store | None = None) -> dict[str, Any]:
    return _queue(db).get(job_id)


def list_jobs(
    db: str | Store | None = None, status: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    return _queue(db).list(status=status, limit=limit)


def cancel_job(job_id: int, db: str | Store | None = None) -> str:
    return _queue(db).cancel(job_id)


def retry_job(job_id: int, db: str | Store | None = None) -> None:
    _queue(db).retry(job_id)


def job_logs(
    job_id: int, db: str | Store | None = None, tail: int | None = None
) -> list[dict[str, Any]]:
    return _queue(db).logs(job_id, tail=tail)
