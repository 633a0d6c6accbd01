"""Live progress of a run: a rich bar per stage with tokens/s, requests, cache hits, cost, reward.

The same numbers go to an `on_progress(dict)` callback (jobs record them in the store), and every
update is a safe point where a requested cancellation stops the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .errors import Cancelled


class RunProgress:
    def __init__(
        self,
        enabled: bool = True,
        provider: Any = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        cancel_check: Callable[[], bool] | None = None,
        console: Console | None = None,
    ):
        self.provider = provider
        self.on_progress = on_progress
        self.cancel_check = cancel_check
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self._progress: Progress | None = None
        self._task = None
        self.stage_name = ""
        self.done = 0
        self.total = 0
        self.tokens = 0
        self.rewards: list[float] = []
        self._t0 = time.monotonic()
        self._stage_t0 = self._t0
        self._stage_tokens0 = 0

    def __enter__(self) -> RunProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None

    def log(self, message: str) -> None:
        if self.enabled:
            self.console.print(message, highlight=False)

    def stage(self, name: str, total: int, done: int = 0) -> None:
        """Start a stage of `total` units (prompts, epochs) of which `done` are already finished."""
        self.check_cancel()
        self.stage_name, self.total, self.done = name, total, done
        self.rewards = []
        self._stage_t0 = time.monotonic()
        self._stage_tokens0 = self.tokens
        if self._progress is not None:
            self._task = self._progress.add_task(name, total=max(total, 1), completed=done, info="")
        self._emit()

    def advance(self, n: int = 1, tokens: int = 0, reward: float | None = None) -> None:
        self.done += n
        self.tokens += tokens
        if reward is not None:
            self.rewards.append(reward)
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=self.done, info=self._info())
        self._emit()
        self.check_cancel()

    def finish_stage(self) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=max(self.total, 1), info=self._info())

    def _stats(self) -> dict[str, Any]:
        st = getattr(self.provider, "stats", None)
        return st.snapshot() if st is not None else {}

    def _info(self) -> str:
        st = self._stats()
        dt = max(time.monotonic() - self._stage_t0, 1e-6)
        parts = [f"{(self.tokens - self._stage_tokens0) / dt:.0f} tok/s"]
        if st.get("requests") is not None:
            parts.append(f"req {st.get('requests', 0)}")
            parts.append(f"cache {st.get('cache_hits', 0)}")
        if st.get("cost_usd"):
            parts.append(f"${st['cost_usd']:.4f}")
        if self.rewards:
            parts.append(f"reward {sum(self.rewards) / len(self.rewards):+.3f}")
        return "  ".join(parts)

    def snapshot(self) -> dict[str, Any]:
        st = self._stats()
        return {
            "stage": self.stage_name,
            "done": self.done,
            "total": self.total,
            "tokens": self.tokens,
            "requests": st.get("requests", 0),
            "cache_hits": st.get("cache_hits", 0),
            "cost_usd": st.get("cost_usd", 0.0),
            "reward": (sum(self.rewards) / len(self.rewards)) if self.rewards else None,
            "elapsed_s": round(time.monotonic() - self._t0, 1),
        }

    def _emit(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.snapshot())

    def check_cancel(self) -> None:
        if self.cancel_check is not None and self.cancel_check():
            raise Cancelled("cancelled at a safe point")
