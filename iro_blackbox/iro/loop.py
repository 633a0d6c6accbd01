"""The IRO loop: the one place that knows the order of the steps (see DESIGN.md).

    run = iro_blackbox.align("mydata.jsonl", grader="sentiment", iterations=2)
    policy = iro_blackbox.load_run(run.name)

First the pre-flight (preflight.py, once): prices, budget, the run opened, the estimate, the probe
and the printed plan, so that whatever can refuse a run does so before its first paid request.
Then the base policy is evaluated: N = W*K samples per held-out prompt give the base mean reward,
Best-of-N at equal compute, and the base answer (sample 0) for win rates. Then for t = 1..T:
  1. sample:   R candidates per training prompt from pi_{t-1} (t = 1: plain sampling; t > 1:
               chunk-level beam search guided by V_1..V_{t-1}, ceil(R/W) searches, other seeds)
  2. reweight: grade them; keep the best per prompt (or resample weights ∝ exp(r/tau))
  3. optimize: train V_t on every prefix of the training rollouts (MSE onto the final reward),
               then check it before it steers (value_checks.py: held-out ranking, the gate)
  4. evaluate: pi_t (CBS guided by V_1..V_t) on the held-out prompts: the reward of the answer
               the value models pick (no grader at decode time), the grader's pick among the same
               answers, the gain over pi_{t-1} paired by prompt

Every step writes to the store as it goes (store/runs.py; the run's own record: bookkeeping.py),
so a killed run re-run with the same command (or resume=RUN) continues: prompts that have
rollouts are skipped, API responses replay from the request cache, finished value models are
loaded instead of trained again. resume=RUN with more `iterations` than the run's goes on from
its last iteration (finished or not) to the new T. The provider, the grader and the value trainer are injected
(AlignLoop's arguments); `align` builds the real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..dataset import Example, train_and_heldout
from ..errors import InputError
from ..executors import Executor, GradeRow, Scoring, SearchJob
from ..graders import CachedGrader, Grader, load_grader
from ..progress import RunProgress
from ..providers import Provider, build_provider
from ..registry import EXECUTORS
from ..search import SearchParams, value_pick
from ..store import RunRepository, Store, open_store
from ..utils import jsonable
from ..value import RolloutData
from . import metrics
from .bookkeeping import RunBook, RunResult, resumed_config
from .config import AlignConfig
from .preflight import Plan, plan_only, preflight
from .relabel import relabel
from .reweight import reweight
from .trainer import DefaultValueTrainer, ValueTrainer
from .value_checks import check_value_model, gate_passed

BASE_T = metrics.BASE_T


def align(data: str | Path | None = None, **kw: Any) -> RunResult:
    """Run (or resume) IRO on a JSONL file of prompts. Options are AlignConfig's fields; see
    align_async for the others (db, progress, cancel_check, on_progress, resume)."""
    return asyncio.run(align_async(data, **kw))


async def align_async(
    data: str | Path | None = None,
    *,
    db: str | Store | None = None,
    progress: bool = True,
    cancel_check: Callable[[], bool] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    resume: str | None = None,
    dry_run: bool = False,
    **options: Any,
) -> RunResult:
    store = db if isinstance(db, Store) else open_store(db)
    if resume:
        given = {**options, "data": str(data)} if data is not None else options
        cfg = resumed_config(RunRepository(store), resume, given)
    else:
        if data is None:
            raise InputError("align: a data file is required (or resume=RUN)")
        cfg = AlignConfig.from_dict({**options, "data": str(data)})
    loop = AlignLoop(
        cfg,
        store,
        progress=progress,
        cancel_check=cancel_check,
        on_progress=on_progress,
        dry_run=dry_run,
        resumed=bool(resume),
    )
    return await loop.run()


class AlignLoop:
    """One run of IRO. provider / grader / trainer default to the ones the config describes."""

    def __init__(
        self,
        cfg: AlignConfig,
        store: Store,
        *,
        provider: Provider | None = None,
        grader: Grader | None = None,
        trainer: ValueTrainer | None = None,
        executor: Executor | None = None,
        progress: bool = True,
        cancel_check: Callable[[], bool] | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        dry_run: bool = False,
        resumed: bool = False,
    ):
        self.cfg = cfg
        self.dry_run = dry_run
        self.store = store
        self.book = RunBook(cfg, store, resumed=resumed)  # the run's row, folder and examples
        self.repo = self.book.repo
        self.provider = provider
        self._own_provider = provider is None
        self.executor = executor  # default: the run's --executor, made in run()
        self._own_executor = executor is None
        self.grader = grader
        self.trainer = trainer or DefaultValueTrainer(cfg, progress=progress)
        self.show_progress = progress
        self.cancel_check = cancel_check
        self.on_progress = on_progress
        self.progress: RunProgress | None = None  # the live display, from the pre-flight on
        self.plan: Plan | None = None  # what the pre-flight settled
        self.value_models: list[Any] = []  # V_1 .. V_t, in order
        self.in_use: list[bool] = []  # per V_t: passed the gate (or --no-gate), so it steers

    @property
    def run_id(self) -> int:
        return self.book.run_id

    # -- the run --------------------------------------------------------------------------------
    async def run(self) -> RunResult:
        r = self.cfg.run
        self.train, self.evals = train_and_heldout(r.data, r.eval, r.eval_split, r.seed, r.limit)
        grader = self.grader or load_grader(self.cfg.run.grader)
        self.grader = CachedGrader(grader, self.store)
        try:
            check_items = getattr(grader, "check_items", None)
            if check_items is not None:  # every field the grader reads, before any work
                check_items([e.data for e in self.train + self.evals])
            if self.dry_run:
                return await self._dry_run()
            if self.executor is None:
                self.executor = EXECUTORS.get(self.cfg.run.executor).create(
                    self.cfg, self.store, provider=self.provider, cancel_check=self.cancel_check
                )
            self.provider = self.executor.driver_provider()
            with contextlib.ExitStack() as shown:
                self.plan = await preflight(
                    self.cfg, self.provider, self.book, self.train, self.evals,
                    display=lambda: self._display(shown),
                )  # fmt: skip
                await self.evaluate_base()
                for t in range(1, self.cfg.run.iterations + 1):
                    await self.iterate(t)
                return self.book.finish(self.plan.estimate)
        except BaseException as e:
            if self.progress is not None and self.run_id:  # under way, and not discarded
                self.book.stop(e)
            raise
        finally:
            if not self.dry_run:  # a dry run closes its own
                await self._close()

    def _display(self, stack: contextlib.ExitStack) -> RunProgress:
        """The live display of the run, started by the pre-flight once the run is open."""
        self.progress = stack.enter_context(
            RunProgress(
                self.show_progress,
                provider=self.provider,
                on_progress=self.on_progress,
                cancel_check=self.cancel_check,
            )
        )
        return self.progress

    async def _close(self) -> None:
        """Close the provider and executor the run made, and the grader."""
        if self._own_provider and self.provider is not None:
            await self.provider.aclose()
        if self._own_executor and self.executor is not None:
            await self.executor.aclose()
        await self.grader.aclose()

    async def _dry_run(self) -> RunResult:
        """The estimate only (preflight.plan_only): no run is created and no request sent."""
        self.provider = self.provider or build_provider(self.cfg.provider, self.store)
        try:
            with RunProgress(self.show_progress, provider=self.provider) as shown:
                est = plan_only(
                    self.cfg, self.provider, self.book, self.train, self.evals, shown.log
                )
        finally:
            if self._own_provider:
                await self.provider.aclose()
            await self.grader.aclose()
        b = self.book
        return RunResult(b.name, 0, b.out_dir, {}, [], None, est, b.spent())

    async def iterate(self, t: int) -> None:
        """Iteration t: the four IRO steps, each recorded when it is done."""
        if self.repo.iteration(self.run_id, t).stage == "done":
            self.value_models.append(self._load_value_model(t))
            self.in_use.append(self._gate_passed(t))
            return
        before = self.provider.stats.snapshot()
        tokens_before = self.repo.generated_tokens(self.run_id)
        await self.sample(t)
        m = await self.reweight(t)
        self.repo.set_iteration(self.run_id, t, "reweighted", m)
        m.update(await self.optimize(t))
        self.repo.set_iteration(self.run_id, t, "trained", m)
        m.update(await self.evaluate(t))
        m["tokens"] = self.repo.generated_tokens(self.run_id) - tokens_before
        m.update(metrics.provider_delta(before, self.provider.stats.snapshot()))
        self.repo.set_iteration(self.run_id, t, "done", m)
        self.progress.log(self.book.iteration_line(t, m))

    # -- base policy ----------------------------------------------------------------------------
    async def evaluate_base(self) -> None:
        """N = W*K samples of the base policy per held-out prompt: its mean reward, Best-of-N."""
        if self.repo.iteration(self.run_id, BASE_T).stage == "done":
            return
        before = self.provider.stats.snapshot()
        n = self.cfg.search.n
        params = self.cfg.search_params(("eval-base",), n=n, final="grader")
        label = f"evaluate base policy + best-of-{n}"
        await self._search("best_of_n", self.evals, params, None, BASE_T, "eval", label=label)
        by_ex = self.book.grouped(BASE_T, "eval", "best_of_n")
        m = metrics.base_metrics(
            {ex: [r.reward for r in rs] for ex, rs in by_ex.items()},
            {ex: [r.completion_tokens for r in rs] for ex, rs in by_ex.items()},
            n,
            grade_errors=sum(1 for rs in by_ex.values() for r in rs if r.grade_error),
        )
        m.update(metrics.provider_delta(before, self.provider.stats.snapshot()))
        self.repo.set_iteration(self.run_id, BASE_T, "done", m)
        self.progress.log(
            f"base policy: mean reward {m['eval_mean_reward']:+.3f}, "
            f"best-of-{n} {m['bon_mean_reward']:+.3f}"
        )

    # -- step 1: sample -------------------------------------------------------------------------
    async def sample(self, t: int) -> None:
        """R candidates per training prompt from pi_{t-1}."""
        exs = self.cfg.train_prompts(self.train, t)
        R = self.cfg.n_rollouts
        if t == 1:
            params = self.cfg.search_params(("train", t), n=R)
            label = f"t={t} rollouts: {R} samples per prompt"
            await self._search("sample", exs, params, None, t, "train", label=label)
            return
        runs = math.ceil(self.cfg.n_guided_rollouts / self.cfg.search.w)
        policy = self.cfg.search.policy
        for r in range(runs):
            params = self.cfg.search_params(("train", t, r), final="score")
            label = f"t={t} rollouts: guided search {r + 1}/{runs}"
            await self._search(
                policy, exs, params, self._scorer(t - 1), t, "train", search=r, label=label
            )

    # -- step 2: reweight -----------------------------------------------------------------------
    async def reweight(self, t: int) -> dict[str, Any]:
        """Grade every candidate the search left ungraded, then keep the best per prompt (or
        resample weights ∝ exp(r/tau))."""
        method = self._rollout_method(t)
        await self._grade_missing(t, "train", method)
        by_ex = self.book.grouped(t, "train", method)
        updates = []
        for rs in by_ex.values():
            best, weights = reweight(
                [_reward(r) for r in rs], self.cfg.run.reweight, self.cfg.run.tau
            )
            updates += [
                (r.id, i == best, w) for i, (r, w) in enumerate(zip(rs, weights, strict=True))
            ]
        self.repo.set_weights(updates)
        rows = [r for rs in by_ex.values() for r in rs]
        return {
            "train_mean_reward": metrics.mean([_reward(r) for r in rows]),
            "train_best_reward": metrics.mean(
                [max(_reward(r) for r in rs) for rs in by_ex.values()]
            ),
            "train_rollouts": len(rows),
            "train_prompts": len(by_ex),
            "grade_errors": sum(1 for r in rows if r.grade_error),
        }

    # -- step 3: optimize -----------------------------------------------------------------------
    async def optimize(self, t: int) -> dict[str, Any]:
        """Train V_t (warm-started from V_{t-1}) on the reweighted rollouts of iteration t."""
        rec = self.repo.value_model(self.run_id, t)
        if rec is not None and Path(rec.path).is_dir():  # trained before a crash: load it
            self.value_models.append(self.trainer.load(rec.path))
            self.in_use.append(self._gate_passed(t))
            return {"value": rec.metrics}
        rows = self.repo.rollouts(self.run_id, t, "train", self._rollout_method(t))
        if self.cfg.value.value_data == "selected":  # the kept candidates, as they are
            data = [RolloutData(r.prompt, r.response, _reward(r), 1.0) for r in rows if r.selected]
        else:  # every candidate, with the reweight step's weight
            resample = self.cfg.run.reweight == "resample"
            data = [
                RolloutData(
                    r.prompt, r.response, _reward(r), (r.weight or 0.0) if resample else 1.0
                )
                for r in rows
            ]
        originals = len(data)  # relabelled rows follow the sampled ones
        if self.cfg.value.value_relabel:
            data += await self._relabelled(t, data)
        warm = self.value_models[-1] if (self.cfg.value.warm_start and self.value_models) else None
        self.progress.stage(f"t={t} training value model V_{t} ({len(data)} rollouts)", 1)
        path = self.book.out_dir / "value" / f"v{t}"
        prev = self.repo.value_model(self.run_id, t - 1) if warm is not None else None
        model, m, config = await self.executor.train(
            self.trainer, data, t, warm, prev.path if prev else None, path
        )
        m = jsonable(m)
        if len(data) > originals:
            m["relabelled"] = len(data) - originals
        used = check_value_model(
            m, self.trainer, self.cfg, t, model, data, self._heldout_answers(t),
            self.value_models, self.in_use, self.progress.log,
        )  # fmt: skip
        self.repo.add_value_model(
            self.run_id,
            t,
            path=str(path.resolve()),
            backbone=self.cfg.value.value_backbone,
            metrics=m,
            config=jsonable(config),
        )
        self.progress.advance(1)
        self.value_models.append(model)
        self.in_use.append(used)
        return {"value": m}

    async def _relabelled(self, t: int, data: list[RolloutData]) -> list[RolloutData]:
        """--value-relabel K: every training answer graded against K other training prompts."""
        items = {}
        for r in self.repo.rollouts(self.run_id, t, "train", self._rollout_method(t)):
            items.setdefault(r.prompt, self.book.items.get(r.example_id, {}))
        k = self.cfg.value.value_relabel
        self.progress.stage(f"t={t} relabelling: each answer graded for {k} other prompts", 1)
        extra = await relabel(data, items, self.grader, k=k, seed=self.cfg.run.seed + t)
        self.progress.advance(1)
        return extra

    def _gate_passed(self, t: int) -> bool:
        rec = self.repo.value_model(self.run_id, t)
        return gate_passed(self.cfg, rec.metrics if rec is not None else None)

    def _heldout_answers(self, t: int) -> list[RolloutData]:
        """The graded answers of pi_{t-1} on the held-out prompts (t = 1: the base samples)."""
        if t - 1 == BASE_T:
            rows = self.repo.rollouts(self.run_id, BASE_T, "eval", "best_of_n")
        else:
            rows = self.repo.rollouts(self.run_id, t - 1, "eval", self.cfg.search.policy)
        return [
            RolloutData(r.prompt, r.response, float(r.reward), 1.0)
            for r in rows
            if r.reward is not None and r.grade_error is None
        ]

    # -- step 4: evaluate -----------------------------------------------------------------------
    async def evaluate(self, t: int) -> dict[str, Any]:
        """pi_t on the held-out prompts (see metrics.policy_metrics)."""
        policy = self.cfg.search.policy
        params = self.cfg.search_params(("eval", t), final="grader")
        label = f"t={t} evaluate pi_{t} ({'guided search' if policy == 'cbs' else policy})"
        await self._search(policy, self.evals, params, self._scorer(t), t, "eval", label=label)
        by_ex = self.book.grouped(t, "eval", policy)
        base = self.book.grouped(BASE_T, "eval", "best_of_n")
        answers = {ex: _value_pick_reward(rs) for ex, rs in by_ex.items()}
        if t - 1 == BASE_T:
            prev = {ex: metrics.mean([_reward(r) for r in rs]) for ex, rs in base.items()}
        else:
            prev = {
                ex: _value_pick_reward(rs)
                for ex, rs in self.book.grouped(t - 1, "eval", policy).items()
            }
        return metrics.policy_metrics(
            answers,
            grader_picks={
                ex: _reward(next((r for r in rs if r.selected), rs[0])) for ex, rs in by_ex.items()
            },
            previous=prev,
            base_first={ex: _reward(rs[0]) for ex, rs in base.items()},
            answers_per_prompt=[len(rs) for rs in by_ex.values()],
            tokens_per_prompt=[
                next((x.usage for x in rs if x.usage), {}).get("completion_tokens", 0)
                for rs in by_ex.values()
            ],
        )

    # -- searching and grading, stored as they finish --------------------------------------------
    async def _search(
        self,
        method: str,
        examples: list[Example],
        params: SearchParams,
        scoring: Scoring | None,
        t: int,
        phase: str,
        *,
        search: int = 0,
        label: str,
    ) -> None:
        """Run search `method` on the examples that have no stored rollouts of it yet, writing
        each prompt's candidates as it finishes."""
        todo = self.book.remaining(t, phase, method, search, examples)
        self.progress.stage(label, len(examples), len(examples) - len(todo))
        if not todo:
            self.progress.finish_stage()
            return
        job = SearchJob(self.run_id, method, t, phase, search, params)

        def on_stored(tokens: int, reward: float | None) -> None:
            self.progress.advance(1, tokens=tokens, reward=reward)

        pairs = [(e, self.book.pk[e.id]) for e in todo]
        await self.executor.search(
            job, pairs, scoring or Scoring([], [], []), self.grader, on_stored
        )
        self.progress.finish_stage()

    async def _grade_missing(self, t: int, phase: str, method: str) -> None:
        """Grade rows without a reward (sampling does not grade; cbs grades its finals)."""
        rows = [
            r
            for r in self.repo.rollouts(self.run_id, t, phase, method)
            if r.reward is None and r.grade_error is None
        ]
        if not rows:
            return
        self.progress.stage(f"t={t} grading", len(rows))
        await self.executor.grade(
            self.run_id,
            self.grader,
            [GradeRow(r.id, r.response, self.book.items[r.example_id]) for r in rows],
            lambda n, mean: self.progress.advance(n, reward=mean),
        )
        self.progress.finish_stage()

    # -- the run's value models -----------------------------------------------------------------
    def _load_value_model(self, t: int) -> Any:
        rec = self.repo.value_model(self.run_id, t)
        if rec is None or not Path(rec.path).is_dir():
            raise InputError(
                f"run '{self.book.name}': iteration {t} is done but its value model is missing"
                + (f" at {rec.path}" if rec is not None else "")
            )
        return self.trainer.load(rec.path)

    def _rollout_method(self, t: int) -> str:
        return "sample" if t == 1 else self.cfg.search.policy

    def _scorer(self, upto: int) -> Scoring:
        """V_1..V_upto as loaded here and as saved (for executors elsewhere)."""
        paths = [r.path for r in self.repo.value_models(self.run_id, upto)]
        betas = self.cfg.search.betas(upto)
        use = [i for i, u in enumerate(self.in_use[:upto]) if u]  # rejected: beta = infinity
        return Scoring(
            [self.value_models[i] for i in use], [paths[i] for i in use], [betas[i] for i in use]
        )


def _reward(row: Any) -> float:
    return metrics.reward_or_zero(row.reward)


def _value_pick_reward(rows: list[Any]) -> float:
    """The reward of the row cbs answers with by value score alone (no grader)."""
    return _reward(rows[value_pick([r.response for r in rows], [r.score for r in rows])])
