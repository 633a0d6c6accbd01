"""Where the loop's heavy steps run: searches (rollouts, evaluations), grading and value training.

    executor = EXECUTORS.get(cfg.run.executor).create(cfg, store)
    await executor.search(job, todo, scoring, on_stored)      # each prompt stored as it finishes
    await executor.grade(rows, on_graded)                     # each batch's grades stored
    model, metrics, config = await executor.train(trainer, data, t, warm_start, out_dir)

The store is the source of truth either way: a search writes each prompt's candidates as soon as
that prompt is done (`store_result`), so after a crash, a lost worker or a lost node, only the
prompts with nothing stored are searched again, and a finished one never is. `local` runs
everything in this process with the run's provider; `ray` (ray_cluster.py) spreads prompt shards,
grading batches and value training over a Ray cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..dataset import Example, prompt_text
from ..graders import Grader
from ..registry import SEARCHES
from ..search import CombinedScorer, SearchParams, SearchResult
from ..store import RunRepository

GRADE_BATCH = 64  # rollouts graded per grader call (and per store write)


@dataclass(frozen=True)
class SearchJob:
    """One search over a set of prompts, as it can travel to another process or machine."""

    run_id: int
    method: str  # a registered search: sample | best_of_n | cbs | rerank
    t: int  # the iteration whose policy searches (0: the base policy)
    phase: str  # train | eval
    search: int  # which search of (t, phase, method)
    params: SearchParams

    @property
    def keep_finals(self) -> bool:
        """rerank's training draws from pi_{t-1} are its W best answers (cbs: every answer)."""
        return self.method == "rerank" and self.phase == "train"


@dataclass
class Scoring:
    """The value models that guide a search: loaded (this process) and where they are saved
    (for other processes); betas one per model."""

    models: list[Any]
    paths: list[str]
    betas: list[float]  # beta_t of V_1..V_n (the --beta schedule)

    def scorer(self) -> CombinedScorer | None:
        if not self.models:
            return None
        return CombinedScorer(self.models, self.betas[: len(self.models)])


@dataclass(frozen=True)
class GradeRow:
    id: int  # the rollout's row id
    response: str
    item: dict[str, Any]  # the example's record (what the grader reads)


# called after a prompt's candidates are stored: (tokens generated, the answer's reward)
OnStored = Callable[[int, float | None], None]


def store_result(
    repo: RunRepository, job: SearchJob, example_pk: int, result: SearchResult
) -> None:
    """Write one prompt's candidates (duplicates of a prompt already stored are ignored)."""
    cands = [c for c in result.candidates if c.final] if job.keep_finals else result.candidates
    repo.add_rollouts(
        job.run_id,
        t=job.t,
        phase=job.phase,
        method=job.method,
        search=job.search,
        example_pk=example_pk,
        prompt=prompt_text(result.example.prompt),
        candidates=cands,
        usage=result.usage.to_dict(),
    )


async def run_search(
    repo: RunRepository,
    job: SearchJob,
    todo: Sequence[tuple[Example, int]],
    provider: Any,
    scorer: CombinedScorer | None,
    grader: Grader | None,
    on_stored: OnStored | None = None,
) -> None:
    """The search of `job` on (example, row id) pairs with this process's provider, each
    prompt stored as it finishes (shared by both executors)."""
    pk = {e.id: p for e, p in todo}

    def on_result(result: SearchResult) -> None:
        store_result(repo, job, pk[result.example.id], result)
        if on_stored is not None:
            on_stored(result.usage.completion_tokens, result.best.reward)

    await SEARCHES.get(job.method)(
        [e for e, _ in todo], provider, scorer, job.params, grader=grader, on_result=on_result
    )


async def grade_rows(
    repo: RunRepository,
    grader: Grader,
    rows: Sequence[GradeRow],
    on_graded: Callable[[int, float | None], None] | None = None,
) -> None:
    """Grade rows in batches, storing each batch's grades (shared by both executors)."""
    for i in range(0, len(rows), GRADE_BATCH):
        part = rows[i : i + GRADE_BATCH]
        grades = await grader.grade([r.response for r in part], [r.item for r in part])
        repo.set_grades((r.id, float(g.score), g.error) for r, g in zip(part, grades, strict=True))
        if on_graded is not None:
            scores = [g.score for g in grades]
            on_graded(len(part), sum(scores) / len(scores) if scores else None)


class Executor(Protocol):
    name: str

    def driver_provider(self) -> Any:
        """The provider the loop itself uses (estimates, the probe, budgets, live stats)."""
        ...

    async def search(
        self,
        job: SearchJob,
        todo: Sequence[tuple[Example, int]],
        scoring: Scoring,
        grader: Grader | None,
        on_stored: OnStored,
    ) -> None: ...

    async def grade(
        self,
        run_id: int,
        grader: Grader,
        rows: Sequence[GradeRow],
        on_graded: Callable[[int, float | None], None],
    ) -> None: ...

    async def train(
        self,
        trainer: Any,
        data: list[Any],
        t: int,
        warm_start: Any,
        warm_path: str | None,
        out_dir: Path,
    ) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        """V_t (warm-started from the loaded model / its saved folder), saved in out_dir."""
        ...

    async def aclose(self) -> None: ...


class LocalExecutor:
    """Everything in this process, with the run's own provider (the default)."""

    name = "local"

    def __init__(self, cfg: Any, store: Any, provider: Any = None, cancel_check: Any = None):
        self.cfg = cfg
        self.store = store
        self.repo = RunRepository(store)
        self._provider = provider
        self.cancel_check = cancel_check

    @classmethod
    def create(
        cls, cfg: Any, store: Any, provider: Any = None, cancel_check: Any = None
    ) -> LocalExecutor:
        return cls(cfg, store, provider, cancel_check)

    def driver_provider(self) -> Any:
        if self._provider is None:
            from ..providers import build_provider

            self._provider = build_provider(self.cfg.provider, self.store)
        return self._provider

    async def search(self, job, todo, scoring, grader, on_stored) -> None:
        provider = self.driver_provider()
        if self.cfg.provider.batch_api and job.method in ("sample", "best_of_n"):
            from ..errors import ConfigError
            from ..search import sample_requests

            prefetch = getattr(provider, "prefetch", None)
            if prefetch is None:
                raise ConfigError(f"provider '{provider.name}' has no Batch API")
            await prefetch(
                sample_requests([e for e, _ in todo], job.params), cancel_check=self.cancel_check
            )
        await run_search(self.repo, job, todo, provider, scoring.scorer(), grader, on_stored)

    async def grade(self, run_id, grader, rows, on_graded) -> None:
        await grade_rows(self.repo, grader, rows, on_graded)

    async def train(self, trainer, data, t, warm_start, warm_path, out_dir):
        return await asyncio.to_thread(
            trainer.train, data, t=t, warm_start=warm_start, out_dir=out_dir
        )

    async def aclose(self) -> None:
        return None
