"""The job queue in the store: submit, claim atomically, heartbeat, progress, cancel, finish, logs.

    q = JobQueue(open_store(db))
    job_id = q.submit("generate", {"run": "demo", "input": "/abs/p.jsonl", "output": "/abs/o.jsonl"})
    claim = q.claim(worker="host:123:ab12", stale_after=60)   # None when nothing is runnable

On PostgreSQL a claim is `SELECT ... FOR UPDATE SKIP LOCKED` of the oldest runnable job, then its
UPDATE in the same transaction: workers on many machines each take a different row at once, none
waiting on another's lock. SQLite has no row locks; there a claim is one `UPDATE jobs ... WHERE
id = ? AND (status = 'queued' OR (status = 'running' AND heartbeat_at < cutoff))` whose row count
says who won. Either way two workers (processes, machines) never run the same job. Every later write of a running job is fenced by
the claim token (`worker` column): a worker that was presumed dead and lost its job cannot
overwrite the new owner's state.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update

from ..errors import InputError
from .db import Store
from .schema import Job, JobLog, utcnow

STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINAL = ("done", "failed", "cancelled")
MAX_LOG_CHARS = 20_000  # one log message is cut to this many characters


def new_worker_id() -> str:
    """A claim token unique to this worker process: host:pid:random."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Claim:
    """A job this worker owns until it finishes, releases it, or stops heartbeating."""

    id: int
    kind: str
    args: dict[str, Any]
    worker: str
    attempt: int  # 1 for the first run, 2+ when resuming after a dead worker or a release
    progress: dict[str, Any]


@dataclass
class Heartbeat:
    owned: bool  # False: another worker took the job over (we were presumed dead)
    cancel_requested: bool


def _row_dict(j: Job) -> dict[str, Any]:
    return {
        "id": j.id,
        "kind": j.kind,
        "args": j.args,
        "status": j.status,
        "progress": j.progress or {},
        "error": j.error,
        "worker": j.worker,
        "attempts": j.attempts,
        "cancel_requested": j.cancel_requested,
        "heartbeat_at": j.heartbeat_at,
        "created_at": j.created_at,
        "started_at": j.started_at,
        "finished_at": j.finished_at,
    }


class JobQueue:
    """All reads and writes of the `jobs` and `job_logs` tables."""

    def __init__(self, store: Store):
        self.store = store

    # -- submitting and reading ------------------------------------------------------------
    def submit(self, kind: str, args: dict[str, Any]) -> int:
        with self.store.session() as s:
            job = Job(kind=kind, args=args, status="queued", progress={})
            s.add(job)
            s.flush()
            job_id = job.id
            s.add(JobLog(job_id=job_id, level="info", message=f"submitted {kind} job"))
        return job_id

    def update_args(self, job_id: int, args: dict[str, Any]) -> None:
        with self.store.session() as s:
            s.execute(update(Job).where(Job.id == job_id).values(args=args))

    def get(self, job_id: int) -> dict[str, Any]:
        with self.store.session() as s:
            j = s.get(Job, job_id)
            if j is None:
                last = s.scalar(select(Job.id).order_by(Job.id.desc()).limit(1))
                hint = f" (latest job is {last})" if last else " (the store has no jobs yet)"
                raise InputError(f"no job {job_id} in {self.store.display_url}{hint}")
            return _row_dict(j)

    def list(self, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        if status is not None and status not in STATUSES:
            raise InputError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        with self.store.session() as s:
            q = select(Job).order_by(Job.id.desc()).limit(limit)
            if status:
                q = q.where(Job.status == status)
            return [_row_dict(j) for j in s.scalars(q)]

    def logs(self, job_id: int, tail: int | None = None) -> list[dict[str, Any]]:
        self.get(job_id)  # clear error for an unknown id
        with self.store.session() as s:
            q = select(JobLog).where(JobLog.job_id == job_id).order_by(JobLog.id.desc())
            if tail:
                q = q.limit(tail)
            rows = list(s.scalars(q))
        return [{"at": r.at, "level": r.level, "message": r.message} for r in reversed(rows)]

    def log(self, job_id: int, message: str, level: str = "info") -> None:
        with self.store.session() as s:
            s.add(JobLog(job_id=job_id, level=level, message=message[:MAX_LOG_CHARS]))

    # -- claiming ----------------------------------------------------------------------------
    def _fail_exhausted(self, stale_after: float, max_attempts: int) -> None:
        """Jobs whose workers died `max_attempts` times are failed instead of re-claimed; stale
        jobs whose cancel was requested end cancelled without running again."""
        cutoff = utcnow() - timedelta(seconds=stale_after)
        stale = and_(Job.status == "running", Job.heartbeat_at < cutoff)
        with self.store.session() as s:
            rows = s.execute(
                select(Job.id, Job.attempts, Job.cancel_requested, Job.worker).where(stale)
            ).all()
        for job_id, attempts, cancel, worker in rows:
            if cancel:
                status, error = "cancelled", None
                msg = f"cancelled (its worker {worker} stopped heartbeating)"
            elif attempts >= max_attempts:
                status = "failed"
                error = (
                    f"worker died {attempts} times while running this job (last: {worker}); "
                    "`iro-bb jobs retry` to try again"
                )
                msg = error
            else:
                continue
            with self.store.session() as s:
                n = s.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.worker == worker, stale)
                    .values(status=status, error=error, finished_at=utcnow(), worker=None)
                ).rowcount
                if n == 1:
                    s.add(JobLog(job_id=job_id, level="warning", message=msg))

    @staticmethod
    def _claimed(s: Any, job_id: int, status: str, previous: str | None, worker: str) -> Claim:
        """The Claim of a job just taken in session `s` (logged with it)."""
        j = s.get(Job, job_id)
        s.refresh(j)
        msg = f"claimed by {worker} (attempt {j.attempts})"
        if status == "running":
            msg += f"; its previous worker {previous} stopped heartbeating"
        s.add(JobLog(job_id=job_id, level="info", message=msg))
        return Claim(
            id=j.id,
            kind=j.kind,
            args=dict(j.args or {}),
            worker=worker,
            attempt=j.attempts,
            progress=dict(j.progress or {}),
        )

    def claim(
        self,
        worker: str,
        *,
        stale_after: float = 60.0,
        kinds: list[str] | None = None,
        max_attempts: int = 5,
    ) -> Claim | None:
        """Take the oldest runnable job (queued, or running with a heartbeat older than
        `stale_after` seconds), or None. Atomic across processes."""
        self._fail_exhausted(stale_after, max_attempts)
        now = utcnow()
        cutoff = now - timedelta(seconds=stale_after)
        runnable = or_(
            Job.status == "queued",
            and_(
                Job.status == "running",
                Job.heartbeat_at < cutoff,
                Job.cancel_requested.is_(False),
                Job.attempts < max_attempts,
            ),
        )
        q = select(Job.id, Job.status, Job.worker).where(runnable).order_by(Job.id)
        if kinds is not None:
            q = q.where(Job.kind.in_(kinds))
        take = dict(
            status="running",
            worker=worker,
            heartbeat_at=now,
            attempts=Job.attempts + 1,
            started_at=now,
            finished_at=None,
            error=None,
        )
        if self.store.engine.dialect.name == "postgresql":
            # the row lock is the claim: other workers skip it instead of waiting for it
            with self.store.session() as s:
                row = s.execute(q.limit(1).with_for_update(skip_locked=True)).first()
                if row is None:
                    return None
                s.execute(update(Job).where(Job.id == row.id).values(**take))
                return self._claimed(s, row.id, row.status, row.worker, worker)
        # SQLite has no row locks: a conditional UPDATE that only one writer can win
        with self.store.session() as s:
            candidates = s.execute(q.limit(20)).all()
        for job_id, status, previous in candidates:
            with self.store.session() as s:
                won = s.execute(update(Job).where(Job.id == job_id, runnable).values(**take))
                if won.rowcount != 1:
                    continue  # another worker was faster: try the next candidate
                return self._claimed(s, job_id, status, previous, worker)
        return None

    def unfinished(self, kinds: list[str] | None = None) -> list[dict[str, Any]]:
        """Jobs queued or running (of `kinds`), oldest first: id, status, worker, heartbeat_at.
        A worker told to exit when idle waits while any is left: a running job's worker may
        die, and then the job needs another."""
        q = (
            select(Job.id, Job.status, Job.worker, Job.heartbeat_at)
            .where(Job.status.in_(("queued", "running")))
            .order_by(Job.id)
        )
        if kinds is not None:
            q = q.where(Job.kind.in_(kinds))
        with self.store.session() as s:
            return [r._asdict() for r in s.execute(q)]

    # -- while running (all fenced by the claim token) ---------------------------------------
    def heartbeat(
        self, job_id: int, worker: str, progress: dict[str, Any] | None = None
    ) -> Heartbeat:
        values: dict[str, Any] = {"heartbeat_at": utcnow()}
        if progress is not None:
            values["progress"] = progress
        owned = self._update_owned(job_id, worker, values)
        return Heartbeat(owned=owned, cancel_requested=self.cancel_requested(job_id))

    def cancel_requested(self, job_id: int) -> bool:
        with self.store.session() as s:
            return bool(s.scalar(select(Job.cancel_requested).where(Job.id == job_id)))

    def finish(
        self,
        job_id: int,
        worker: str,
        status: str,
        *,
        error: str | None = None,
        progress: dict[str, Any] | None = None,
    ) -> bool:
        """Record the end of a run; False when the job is no longer ours."""
        if status not in FINAL:
            raise ValueError(f"finish status must be one of {FINAL}, got {status!r}")
        values: dict[str, Any] = {"status": status, "error": error, "finished_at": utcnow()}
        if progress is not None:
            values["progress"] = progress
        return self._update_owned(job_id, worker, values)

    def _update_owned(self, job_id: int, worker: str, values: dict[str, Any]) -> bool:
        """Write `values` to a job only while `worker` still owns it (running): the fence."""
        with self.store.session() as s:
            n = s.execute(
                update(Job)
                .where(Job.id == job_id, Job.worker == worker, Job.status == "running")
                .values(**values)
            ).rowcount
        return n == 1

    def release(self, job_id: int, worker: str, progress: dict[str, Any] | None = None) -> bool:
        """Give a running job back to the queue (worker shutting down); it resumes later."""
        values: dict[str, Any] = {"status": "queued", "worker": None, "heartbeat_at": None}
        if progress is not None:
            values["progress"] = progress
        return self._update_owned(job_id, worker, values)

    # -- user actions ------------------------------------------------------------------------
    def cancel(self, job_id: int) -> str:
        """Cancel a job: a queued one at once, a running one at its next safe point.
        Returns the job's status after the request."""
        job = self.get(job_id)
        if job["status"] in FINAL:
            return job["status"]
        with self.store.session() as s:
            n = s.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "queued")
                .values(status="cancelled", cancel_requested=True, finished_at=utcnow())
            ).rowcount
            if n == 1:
                s.add(JobLog(job_id=job_id, level="info", message="cancelled before it started"))
                return "cancelled"
            s.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "running")
                .values(cancel_requested=True)
            )
            s.add(JobLog(job_id=job_id, level="info", message="cancel requested"))
        return self.get(job_id)["status"]

    def retry(self, job_id: int) -> None:
        """Queue a failed or cancelled job again; it resumes from the store and request cache."""
        job = self.get(job_id)
        if job["status"] not in ("failed", "cancelled"):
            raise InputError(
                f"job {job_id} is {job['status']}: only failed or cancelled jobs can be retried"
            )
        with self.store.session() as s:
            s.execute(
                update(Job)
                .where(Job.id == job_id, Job.status.in_(("failed", "cancelled")))
                .values(
                    status="queued",
                    cancel_requested=False,
                    error=None,
                    worker=None,
                    heartbeat_at=None,
                    finished_at=None,
                    attempts=0,
                )
            )
            s.add(JobLog(job_id=job_id, level="info", message="queued again (retry)"))


def age(ts: datetime | None) -> float | None:
    """Seconds since a stored (naive UTC) timestamp."""
    return None if ts is None else (utcnow() - ts).total_seconds()
