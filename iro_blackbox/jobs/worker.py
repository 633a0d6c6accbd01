"""The worker: claims queued jobs, runs each in a thread, heartbeats, and ends them cleanly.

    Worker(db, concurrency=2, poll=2.0, stale_after=60).run()

- A claimed job runs in its own thread; one heartbeat thread refreshes every running job's
  `heartbeat_at` (and writes pending progress) every `heartbeat_every` seconds and reads back
  `cancel_requested`.
- A job whose heartbeat is older than `stale_after` seconds is presumed dead and any worker may
  claim it again; since every kind is resumable it continues where the store says it stopped.
  If our heartbeat finds another worker owns the job, we stop it at its next safe point and
  leave the row alone.
- `exit_when_idle` ends the worker once no job of its kinds is queued or running anywhere: a job
  another worker runs is waited for, since that worker may die and the job then needs this one.
- `stop()` (SIGINT/SIGTERM in the CLI) stops claiming, stops running jobs at their next safe
  point and puts them back in the queue, so another worker resumes them.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import Cancelled, InputError, IroError
from ..registry import JOB_KINDS
from ..store import JobQueue, Store, new_worker_id, open_store
from ..store.jobs import age
from .context import JobContext

log = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    claimed: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0
    released: int = 0
    lost: int = 0
    job_ids: list[int] = field(default_factory=list)


class Worker:
    """Runs jobs from one store. Several workers (threads, processes, machines) may share it."""

    def __init__(
        self,
        db: str | Store | None = None,
        *,
        concurrency: int = 1,
        poll: float = 2.0,
        stale_after: float = 60.0,
        heartbeat_every: float | None = None,
        exit_when_idle: bool = False,
        once: bool = False,
        kinds: list[str] | None = None,
        max_attempts: int = 5,
        name: str | None = None,
        on_event: Callable[[int, str, str], None] | None = None,
    ):
        if concurrency < 1:
            raise InputError(f"concurrency must be >= 1, got {concurrency}")
        if poll <= 0:
            raise InputError(f"poll must be > 0 seconds, got {poll}")
        if stale_after <= 0:
            raise InputError(f"stale_after must be > 0 seconds, got {stale_after}")
        if max_attempts < 1:
            raise InputError(f"max_attempts must be >= 1, got {max_attempts}")
        self.store = db if isinstance(db, Store) else open_store(db)
        self.queue = JobQueue(self.store)
        self.concurrency = concurrency
        self.poll = poll
        self.stale_after = stale_after
        # several beats per stale window, so one slow write does not make a live job look dead
        self.heartbeat_every = heartbeat_every or max(0.2, min(10.0, stale_after / 6))
        self.exit_when_idle = exit_when_idle
        self.once = once
        self.kinds = kinds if kinds is not None else JOB_KINDS.names()
        for k in self.kinds:
            JOB_KINDS.get(k)  # unknown kind -> clear error now
        self.max_attempts = max_attempts
        self.id = name or new_worker_id()
        self.on_event = on_event  # (job id, event, message): claimed|done|failed|cancelled|...
        self.stats = WorkerStats()
        self._running: dict[int, tuple[threading.Thread, JobContext]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._beat = threading.Event()  # set to end the heartbeat thread's sleep early
        self._waited_for: set[int] = set()  # other workers' jobs exit_when_idle waits for

    def _emit(self, job_id: int, event: str, message: str) -> None:
        if self.on_event is not None:
            try:
                self.on_event(job_id, event, message)
            except Exception:  # printing must never break a job
                log.exception("on_event failed")

    # -- control -----------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop claiming; running jobs stop at their next safe point and go back to the queue."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            for _, ctx in self._running.values():
                ctx.shutdown_event.set()

    @property
    def running_jobs(self) -> list[int]:
        with self._lock:
            return list(self._running)

    # -- main loop ---------------------------------------------------------------------------
    def run(self) -> WorkerStats:
        hb = threading.Thread(target=self._heartbeat_loop, name="iro-heartbeat", daemon=True)
        hb.start()
        try:
            self._loop()
        finally:
            self._stop.set()
            self._wake.set()
            self._join_all()
            self._beat.set()
            hb.join(timeout=30)
        return self.stats

    def _loop(self) -> None:
        claimed_any = False
        while not self._stop.is_set():
            self._reap()
            started = False
            if len(self._running) < self.concurrency and not (self.once and claimed_any):
                claim = self.queue.claim(
                    self.id,
                    stale_after=self.stale_after,
                    kinds=self.kinds,
                    max_attempts=self.max_attempts,
                )
                if claim is not None:
                    claimed_any = started = True
                    self._start(claim)
            if not self._running and not started:
                if self.once:
                    return
                if self.exit_when_idle and not self._others_left():
                    return
            if not started:
                self._wake.wait(self.poll if len(self._running) < self.concurrency else 0.5)
                self._wake.clear()

    def _others_left(self) -> bool:
        """Whether any job of our kinds is still queued or running elsewhere (exit_when_idle
        waits for those: a running job's worker may die, and its job then goes stale and is
        ours to take over). Says once per job that it waits for it."""
        left = self.queue.unfinished(self.kinds)
        for j in left:
            if j["status"] == "running" and j["id"] not in self._waited_for:
                self._waited_for.add(j["id"])
                seen = age(j["heartbeat_at"])
                ago = "never" if seen is None else f"{max(seen, 0.0):.0f}s ago"
                self._emit(
                    j["id"],
                    "waiting",
                    f"running on {j['worker']} (last heartbeat {ago}); waiting for it to end "
                    f"(taken over if it goes {self.stale_after:g}s without a heartbeat)",
                )
        return bool(left)

    def _start(self, claim: Any) -> None:
        ctx = JobContext(
            id=claim.id,
            kind=claim.kind,
            args=claim.args,
            store=self.store,
            worker=self.id,
            attempt=claim.attempt,
            queue=self.queue,
            progress=dict(claim.progress),
        )
        ctx.progress.pop("result", None)
        self.stats.claimed += 1
        self.stats.job_ids.append(claim.id)
        what = "resumed" if claim.attempt > 1 else "started"
        self._emit(claim.id, "claimed", f"{claim.kind} {what} (attempt {claim.attempt})")
        t = threading.Thread(target=self._run_job, args=(ctx,), name=f"iro-job-{claim.id}")
        with self._lock:
            self._running[claim.id] = (t, ctx)
        t.start()

    def _reap(self) -> None:
        with self._lock:
            done = [jid for jid, (t, _) in self._running.items() if not t.is_alive()]
            for jid in done:
                self._running.pop(jid)

    def _join_all(self) -> None:
        while True:
            with self._lock:
                threads = [t for t, _ in self._running.values()]
            if not threads:
                return
            for t in threads:
                t.join(timeout=1.0)
            self._reap()

    # -- one job -----------------------------------------------------------------------------
    def _run_job(self, ctx: JobContext) -> None:
        q = self.queue
        try:
            try:
                kind = JOB_KINDS.get(ctx.kind)
                result = kind.run(ctx)
            except Cancelled as e:
                self._stopped(ctx, str(e))
                return
            except IroError as e:
                if ctx.stop_reason():  # an error while being stopped is a stop, not a failure
                    self._stopped(ctx, str(e))
                    return
                self._failed(ctx, str(e) or type(e).__name__, traceback.format_exc())
                return
            except BaseException as e:  # noqa: BLE001 - a job must never take the worker down
                if ctx.stop_reason():
                    self._stopped(ctx, f"{type(e).__name__}: {e}")
                    return
                self._failed(ctx, f"{type(e).__name__}: {e}", traceback.format_exc())
                return
            progress = ctx.snapshot()
            if result is not None:
                progress["result"] = result
            if q.finish(ctx.id, ctx.worker, "done", progress=progress):
                q.log(ctx.id, "done")
                self.stats.done += 1
                self._emit(ctx.id, "done", "done")
            else:
                self._lost(ctx)
        except Exception:  # the store itself failed: the heartbeat stops, the job goes stale
            log.exception("job %s: cannot record its end", ctx.id)
        finally:
            self._wake.set()

    def _stopped(self, ctx: JobContext, why: str) -> None:
        q = self.queue
        reason = ctx.stop_reason() or "cancel"
        if reason == "lost":
            self._lost(ctx)
        elif reason == "shutdown":
            if q.release(ctx.id, ctx.worker, progress=ctx.snapshot()):
                q.log(ctx.id, "worker stopping: job put back in the queue; it will resume")
                self.stats.released += 1
                self._emit(ctx.id, "released", "put back in the queue (worker stopping)")
        else:
            if q.finish(ctx.id, ctx.worker, "cancelled", progress=ctx.snapshot()):
                q.log(ctx.id, f"cancelled{': ' + why if why else ''}")
                self.stats.cancelled += 1
                self._emit(ctx.id, "cancelled", "cancelled")
            else:
                self._lost(ctx)

    def _failed(self, ctx: JobContext, line: str, details: str) -> None:
        q = self.queue
        line = line.strip().splitlines()[0] if line.strip() else "failed"
        if q.finish(ctx.id, ctx.worker, "failed", error=line, progress=ctx.snapshot()):
            q.log(ctx.id, f"failed: {line}", "error")
            q.log(ctx.id, details, "debug")
            self.stats.failed += 1
            self._emit(ctx.id, "failed", line)
        else:
            self._lost(ctx)

    def _lost(self, ctx: JobContext) -> None:
        self.stats.lost += 1
        self._emit(ctx.id, "lost", "another worker owns it now")
        log.warning("job %s: another worker owns it now; left its state alone", ctx.id)

    # -- heartbeat ---------------------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        while True:
            with self._lock:
                items = [ctx for _, ctx in self._running.values()]
            for ctx in items:
                try:
                    hb = self.queue.heartbeat(ctx.id, ctx.worker, progress=ctx.pending_progress())
                except Exception:  # a busy database: try again at the next beat
                    log.exception("job %s: heartbeat failed", ctx.id)
                    continue
                if not hb.owned:
                    ctx.lost_event.set()
                elif hb.cancel_requested:
                    ctx.cancel_event.set()
            if self._stop.is_set() and not items:
                return
            self._beat.wait(self.heartbeat_every)
