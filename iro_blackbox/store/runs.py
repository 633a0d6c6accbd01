"""The run repository: the only code that reads or writes runs, examples, iterations, rollouts,
value-model records and generated answers.

    repo = RunRepository(store)
    run = repo.find("upbeat-demo")                       # by name or id, InputError listing others
    rows = repo.rollouts(run.id, t=1, phase="train", method="sample")
    repo.set_grades([(row.id, 0.8, None), ...])

Reads return ORM rows detached from their session (plain data: the store has no lazy relations);
every write is a method here, one short transaction each.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import InputError
from .db import Store
from .schema import Example, Generation, Iteration, Rollout, Run, ValueModelRecord, utcnow


class CandidateLike(Protocol):
    """What a stored rollout is made of (search.Candidate has it)."""

    text: str
    reward: float | None
    grade_error: str | None
    score: float | None
    selected: bool
    finish_reason: str
    completion_tokens: int


@dataclass(frozen=True)
class ExampleRef:
    """A stored example: its row id (rollouts point at it), id in the data file, split, record."""

    pk: int
    ex_id: str
    split: str
    data: dict[str, Any]


class RunRepository:
    """All reads and writes of a store's runs and what belongs to them."""

    def __init__(self, store: Store):
        self.store = store

    # -- runs -----------------------------------------------------------------------------------
    def get(self, name: str) -> Run | None:
        with self.store.session() as s:
            return s.scalar(select(Run).where(Run.name == name))

    def find(self, run: str | int) -> Run:
        """A run by name or numeric id, or InputError listing what exists."""
        with self.store.session() as s:
            row = s.scalar(select(Run).where(Run.name == str(run)))
            if row is None and str(run).isdigit():
                row = s.get(Run, int(run))
            if row is None:
                names = s.scalars(select(Run.name).order_by(Run.id.desc()).limit(5)).all()
                hint = f" (recent: {', '.join(names)})" if names else " (the store has no runs yet)"
                raise InputError(f"no run named '{run}' in {self.store.display_url}{hint}")
            return row

    def create(
        self,
        name: str,
        config: dict[str, Any],
        out_dir: str,
        examples: Iterable[tuple[str, str, dict[str, Any]]],
    ) -> Run:
        """A new run with its examples: (ex_id, split, record) each."""
        with self.store.session() as s:
            run = Run(name=name, status="created", config=config, out_dir=out_dir)
            s.add(run)
            s.flush()
            for ex_id, split, data in examples:
                s.add(Example(run_id=run.id, ex_id=ex_id, split=split, data=data))
            return run

    def list(self) -> list[tuple[Run, list[Iteration]]]:
        """Every run, newest first, with its iterations."""
        with self.store.session() as s:
            runs = list(s.scalars(select(Run).order_by(Run.id.desc())))
            its: dict[int, list[Iteration]] = {r.id: [] for r in runs}
            for it in s.scalars(select(Iteration).order_by(Iteration.t)):
                its.setdefault(it.run_id, []).append(it)
            return [(r, its[r.id]) for r in runs]

    def delete(self, run_id: int) -> None:
        """Remove a run and everything stored under it (examples, iterations, rollouts, ...)."""
        with self.store.session() as s:  # the children go by ON DELETE CASCADE
            s.execute(delete(Run).where(Run.id == run_id))

    def set_status(self, run_id: int, status: str, error: str | None = None) -> None:
        self._update_run(run_id, status=status, error=error)

    def set_config(self, run_id: int, config: dict[str, Any]) -> None:
        """Replace the run's stored options (the caller checked what may change)."""
        self._update_run(run_id, config=config)

    def set_provider_info(self, run_id: int, info: dict[str, Any]) -> None:
        self._update_run(run_id, provider_info=info)

    def spent(self, run_id: int) -> dict[str, Any]:
        """What the run has paid its provider so far (cost_usd, requests, tokens)."""
        with self.store.session() as s:
            row = s.get(Run, run_id)
            return dict(row.spent or {}) if row is not None else {}

    def add_spent(self, run_id: int, **amounts: float) -> dict[str, Any]:
        """Add to what the run has paid (one transaction, read and written under a row lock
        where the database has them); returns the new totals."""
        with self.store.session() as s:
            row = s.get(Run, run_id, with_for_update=True)
            total = dict(row.spent or {})
            for k, v in amounts.items():
                total[k] = total.get(k, 0) + v
            row.spent = total
            return total

    def finish(self, run_id: int, metrics: dict[str, Any]) -> None:
        self._update_run(run_id, metrics=metrics, status="done", error=None)

    def _update_run(self, run_id: int, **values: Any) -> None:
        with self.store.session() as s:
            s.execute(update(Run).where(Run.id == run_id).values(updated_at=utcnow(), **values))

    # -- examples -------------------------------------------------------------------------------
    def examples(self, run_id: int) -> list[ExampleRef]:
        """The run's examples in the order they were stored."""
        with self.store.session() as s:
            rows = s.scalars(select(Example).where(Example.run_id == run_id).order_by(Example.id))
            return [ExampleRef(r.id, r.ex_id, r.split, r.data) for r in rows]

    def trained_on_chat(self, run_id: int) -> bool:
        """True when every training prompt of the run is a list of chat messages."""
        with self.store.session() as s:
            rows = s.scalars(
                select(Example.data).where(Example.run_id == run_id, Example.split == "train")
            ).all()
        return bool(rows) and all(isinstance(d, dict) and "messages" in d for d in rows)

    # -- iterations -----------------------------------------------------------------------------
    def iteration(self, run_id: int, t: int) -> Iteration:
        """Iteration t of the run (created as 'pending' the first time)."""
        with self.store.session() as s:
            it = s.scalar(select(Iteration).where(Iteration.run_id == run_id, Iteration.t == t))
            if it is None:
                it = Iteration(run_id=run_id, t=t, stage="pending", metrics={})
                s.add(it)
            return it

    def set_iteration(
        self, run_id: int, t: int, stage: str, metrics: dict[str, Any] | None = None
    ) -> None:
        """Record the last finished stage of iteration t, merging `metrics` into its metrics."""
        with self.store.session() as s:
            it = s.scalar(select(Iteration).where(Iteration.run_id == run_id, Iteration.t == t))
            if it is None:
                it = Iteration(run_id=run_id, t=t, metrics={})
                s.add(it)
            it.stage = stage
            if metrics:
                it.metrics = {**(it.metrics or {}), **metrics}
            if stage == "done":
                it.finished_at = utcnow()

    def iterations(self, run_id: int) -> list[dict[str, Any]]:
        """[{"t", "stage", "metrics"}] in order of t."""
        with self.store.session() as s:
            its = s.scalars(
                select(Iteration).where(Iteration.run_id == run_id).order_by(Iteration.t)
            )
            return [{"t": i.t, "stage": i.stage, "metrics": i.metrics} for i in its]

    # -- rollouts -------------------------------------------------------------------------------
    def rollouts(self, run_id: int, t: int, phase: str, method: str) -> list[Rollout]:
        """Rollouts of (t, phase, method), by example, then search, then candidate index."""
        with self.store.session() as s:
            return list(
                s.scalars(
                    select(Rollout)
                    .where(
                        Rollout.run_id == run_id,
                        Rollout.t == t,
                        Rollout.phase == phase,
                        Rollout.method == method,
                    )
                    .order_by(Rollout.example_id, Rollout.search, Rollout.idx)
                )
            )

    def searched(self, run_id: int, t: int, phase: str, method: str, search: int = 0) -> set[int]:
        """Example row ids that already have the rollouts of this search."""
        with self.store.session() as s:
            return set(
                s.scalars(
                    select(Rollout.example_id)
                    .where(
                        Rollout.run_id == run_id,
                        Rollout.t == t,
                        Rollout.phase == phase,
                        Rollout.method == method,
                        Rollout.search == search,
                    )
                    .distinct()
                )
            )

    def sampled_iterations(self, run_id: int) -> set[int]:
        """The iterations t >= 1 that have training rollouts stored."""
        with self.store.session() as s:
            q = select(Rollout.t).where(
                Rollout.run_id == run_id, Rollout.phase == "train", Rollout.t >= 1
            )
            return set(s.scalars(q.distinct()))

    def add_rollouts(
        self,
        run_id: int,
        *,
        t: int,
        phase: str,
        method: str,
        search: int,
        example_pk: int,
        prompt: str,
        candidates: Sequence[CandidateLike],
        usage: dict[str, Any],
    ) -> bool:
        """One search's candidates for one example, in one transaction; the search's cost goes on
        the row of its answer (the selected candidate). False (nothing written) when that search
        of that example is stored already: a worker that was presumed lost finished it too."""
        rows = [
            Rollout(
                run_id=run_id,
                t=t,
                phase=phase,
                method=method,
                example_id=example_pk,
                search=search,
                idx=i,
                prompt=prompt,
                response=c.text,
                reward=c.reward,
                grade_error=c.grade_error,
                score=c.score,
                selected=bool(c.selected),
                finish_reason=c.finish_reason,
                completion_tokens=c.completion_tokens,
                usage=usage if c.selected else {},
            )
            for i, c in enumerate(candidates)
        ]
        try:
            with self.store.session() as s:
                s.add_all(rows)
        except IntegrityError:
            return False
        return True

    def ungraded(self, ids: Iterable[int]) -> set[int]:
        """Which of these rollout ids have neither a reward nor a grade error yet."""
        ids = list(ids)
        out: set[int] = set()
        with self.store.session() as s:
            for i in range(0, len(ids), 500):
                out.update(
                    s.scalars(
                        select(Rollout.id).where(
                            Rollout.id.in_(ids[i : i + 500]),
                            Rollout.reward.is_(None),
                            Rollout.grade_error.is_(None),
                        )
                    )
                )
        return out

    def set_grades(self, grades: Iterable[tuple[int, float, str | None]]) -> None:
        """(rollout id, reward, grade error) for each graded rollout."""
        with self.store.session() as s:
            for rid, reward, error in grades:
                s.execute(
                    update(Rollout)
                    .where(Rollout.id == rid)
                    .values(reward=reward, grade_error=error)
                )

    def set_weights(self, weights: Iterable[tuple[int, bool, float]]) -> None:
        """(rollout id, selected, weight) as the reweight step decided."""
        with self.store.session() as s:
            for rid, selected, weight in weights:
                s.execute(
                    update(Rollout)
                    .where(Rollout.id == rid)
                    .values(selected=selected, weight=weight)
                )

    def generated_tokens(self, run_id: int) -> int:
        """Completion tokens generated so far: each search's usage (on one of its rows) for the
        searches, the rows themselves for plain samples."""
        with self.store.session() as s:
            usages = s.scalars(
                select(Rollout.usage).where(Rollout.run_id == run_id, Rollout.method != "sample")
            ).all()
            sampled = s.scalar(
                select(func.coalesce(func.sum(Rollout.completion_tokens), 0)).where(
                    Rollout.run_id == run_id, Rollout.method == "sample"
                )
            )
        return sum(int((u or {}).get("completion_tokens", 0)) for u in usages) + int(sampled or 0)

    # -- value models ---------------------------------------------------------------------------
    def value_model(self, run_id: int, t: int) -> ValueModelRecord | None:
        with self.store.session() as s:
            return s.scalar(
                select(ValueModelRecord).where(
                    ValueModelRecord.run_id == run_id, ValueModelRecord.t == t
                )
            )

    def value_models(self, run_id: int, upto: int | None = None) -> list[ValueModelRecord]:
        """The run's value-model records in order of t (t <= upto when given)."""
        with self.store.session() as s:
            q = select(ValueModelRecord).where(ValueModelRecord.run_id == run_id)
            if upto is not None:
                q = q.where(ValueModelRecord.t <= upto)
            return list(s.scalars(q.order_by(ValueModelRecord.t)))

    def add_value_model(
        self,
        run_id: int,
        t: int,
        *,
        path: str,
        backbone: str,
        metrics: dict[str, Any],
        config: dict[str, Any],
    ) -> None:
        """Record V_t of the run (kept if one is recorded already: training is deterministic)."""
        with self.store.session() as s:
            have = s.scalar(
                select(ValueModelRecord.id).where(
                    ValueModelRecord.run_id == run_id, ValueModelRecord.t == t
                )
            )
            if have is None:
                s.add(
                    ValueModelRecord(
                        run_id=run_id,
                        t=t,
                        path=path,
                        backbone=backbone,
                        metrics=metrics,
                        config=config,
                    )
                )

    # -- generated answers ----------------------------------------------------------------------
    def generations(self, run_id: int, batch: str) -> dict[str, Generation]:
        """The answers of one generation batch, by the prompt's id."""
        with self.store.session() as s:
            rows = s.scalars(
                select(Generation).where(Generation.run_id == run_id, Generation.batch == batch)
            )
            return {g.ex_id: g for g in rows}

    def add_generation(
        self,
        run_id: int,
        batch: str,
        ex_id: str,
        data: dict[str, Any],
        *,
        response: str,
        finish_reason: str | None,
        score: float | None,
        reward: float | None,
        completion_tokens: int,
        usage: dict[str, Any],
    ) -> None:
        with self.store.session() as s:
            s.add(
                Generation(
                    run_id=run_id,
                    batch=batch,
                    ex_id=ex_id,
                    data=data,
                    response=response,
                    finish_reason=finish_reason,
                    score=score,
                    reward=reward,
                    completion_tokens=completion_tokens,
                    usage=usage,
                )
            )
