"""What a running job sees: its arguments, the store, cancel_check, on_progress and a logger."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..providers.budget import MemoryLedger
from ..store import JobQueue, Store

PROGRESS_EVERY = 1.0  # seconds between progress writes (stage changes are written at once)
CANCEL_POLL_EVERY = 1.0  # seconds between cancel_requested reads from cancel_check()


@dataclass
class JobContext:
    """Handed to a runner. `cancel_check()` is cheap enough to call at every safe point."""

    id: int
    kind: str
    args: dict[str, Any]
    store: Store
    worker: str
    attempt: int  # 1 on the first run; > 1 means resume what earlier attempts left
    queue: JobQueue
    progress: dict[str, Any] = field(default_factory=dict)
    cancel_event: threading.Event = field(default_factory=threading.Event)
    lost_event: threading.Event = field(default_factory=threading.Event)  # another worker owns it
    shutdown_event: threading.Event = field(default_factory=threading.Event)  # worker stopping
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _dirty: bool = False
    _last_write: float = 0.0
    _last_cancel_poll: float = 0.0

    @property
    def db(self) -> Store:
        return self.store

    def stop_reason(self) -> str | None:
        if self.lost_event.is_set():
            return "lost"
        if self.shutdown_event.is_set():
            return "shutdown"
        if self.cancel_event.is_set():
            return "cancel"
        return None

    def cancel_check(self) -> bool:
        """True when the job must stop at this safe point (cancel, shutdown, lost claim)."""
        if self.stop_reason():
            return True
        now = time.monotonic()
        if now - self._last_cancel_poll >= CANCEL_POLL_EVERY:
            self._last_cancel_poll = now
            if self.queue.cancel_requested(self.id):
                self.cancel_event.set()
                return True
        return False

    def on_progress(self, update: dict[str, Any]) -> None:
        """Merge a progress update; written to the store at most once a second (a new stage at
        once). The heartbeat flushes whatever is pending."""
        with self._lock:
            stage_changed = "stage" in update and update["stage"] != self.progress.get("stage")
            self.progress.update(update)
            self._dirty = True
            due = time.monotonic() - self._last_write >= PROGRESS_EVERY
        if stage_changed or due:
            self.flush_progress()

    def pending_progress(self) -> dict[str, Any] | None:
        """A copy of the progress when it changed since the last write, else None."""
        with self._lock:
            if not self._dirty:
                return None
            self._dirty = False
            self._last_write = time.monotonic()
            return dict(self.progress)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.progress)

    def flush_progress(self) -> None:
        p = self.pending_progress()
        if p is not None:
            hb = self.queue.heartbeat(self.id, self.worker, progress=p)
            if not hb.owned:
                self.lost_event.set()

    def log(self, message: str, level: str = "info") -> None:
        self.queue.log(self.id, message, level)


class JobLedger(MemoryLedger):
    """A job's API spending, kept in its progress (`spent`) and written at each request, so an
    attempt that resumes a dead worker's job starts from what the earlier attempts spent: the
    job's budget covers all its attempts together."""

    def __init__(self, ctx: JobContext):
        super().__init__(dict(ctx.progress.get("spent") or {}))
        self.ctx = ctx

    def add(self, **amounts: float) -> dict[str, Any]:
        totals = super().add(**amounts)
        self.ctx.on_progress({"spent": totals})
        self.ctx.flush_progress()  # at once: a crash must not forget money spent
        return totals
