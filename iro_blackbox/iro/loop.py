"""The IRO loop: the one place that knows the order of the steps (see DESIGN.md).

    run = iro_blackbox.align("mydata.jsonl", grader="sentiment", iterations=2)
    policy = iro_blackbox.load_run(run.name)

Before iteration 1 the base policy is evaluated: N = W*K samples per held-out prompt give the
base mean reward, Best-of-N at equal compute, and the base answer (sample 0) for win rates.
Then for t = 1..T:
  1. sample:   R candidates per training prompt from pi_{t-1} (t = 1: plain sampling; t > 1:
               chunk-level beam search guided by V_1..V_{t-1}, ceil(R/W) searches, other seeds)
  2. reweight: grade them; keep the best per prompt (or resample weights ∝ exp(r/tau))
  3. optimize: train V_t on every prefix of the training rollouts (MSE onto the final reward)
  4. evaluate: pi_t (CBS guided by V_1..V_t) on the held-out prompts: the reward of the answer
               the value models pick (no grader at decode time), the grader's pick among the same
               answers, the gain over pi_{t-1} paired by prompt

Every step writes to the store as it goes (store/runs.py), so a killed run re-run with the same
command (or resume=RUN) continues: prompts that have rollouts are skipped, API responses replay
from the request cache, finished value models are loaded instead of trained again. The provider,
the grader and the value trainer are injected (AlignLoop's arguments); `align` builds the real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..dataset import Example, check_disjoint, hold_out, load_examples
from ..errors import BudgetExceeded, Cancelled, ConfigError, InputError, IroError
from ..executors import Executor, GradeRow, Scoring, SearchJob
from ..graders import CachedGrader, Grader, load_grader
from ..progress import RunProgress
from ..providers import Provider, build_provider
from ..providers.budget import (
    Budget,
    BudgetGuard,
    MemoryLedger,
    costs_something,
    guard_provider,
    require_prices,
    spent_line,
)
from ..registry import EXECUTORS
from ..search import SearchParams, value_pick
from ..store import RunRepository, Store, default_home, open_store
from ..value import RolloutData
from ..value.ranking import barely_above_chance
from . import metrics
from .config import AlignConfig, resume_config
from .estimate import Estimate, estimate
from .relabel import relabel
from .report import write_report
from .reweight import reweight
from .trainer import DefaultValueTrainer, ValueTrainer

BASE_T = metrics.BASE_T


@dataclass
class RunResult:
    """What align() returns: where the run lives and its per-iteration metrics (a dry run:
    only the estimate, id 0)."""

    name: str
    id: int
    out_dir: Path
    metrics: dict[str, Any]
    iterations: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None
    estimate: Estimate | None = None
    spent: dict[str, Any] = field(default_factory=dict)


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
    )
    return await loop.run()


def resumed_config(repo: RunRepository, run: str, overrides: dict[str, Any]) -> AlignConfig:
    """A stored run's config; only options that do not change results may be overridden."""
    row = repo.find(run)
    return resume_config({**row.config, "run_name": row.name}, overrides, run)


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
    ):
        self.cfg = cfg
        self.dry_run = dry_run
        self.store = store
        self.repo = RunRepository(store)
        self.provider = provider
        self._own_provider = provider is None
        self.executor = executor  # default: the run's --executor, made in run()
        self._own_executor = executor is None
        self.grader = grader
        self.trainer = trainer or DefaultValueTrainer(cfg, progress=progress)
        self.show_progress = progress
        self.cancel_check = cancel_check
        self.on_progress = on_progress
        self.name = cfg.run.run_name or cfg.default_run_name()
        self.out_dir = Path(cfg.run.out) if cfg.run.out else default_home() / self.name
        self.run_id = 0
        self.pk: dict[str, int] = {}  # example id -> its row id in the store
        self.items: dict[int, dict[str, Any]] = {}  # example row id -> its record (for graders)
        self.value_models: list[Any] = []  # V_1 .. V_t, in order
        self.in_use: list[bool] = []  # per V_t: passed the gate (or --no-gate), so it steers
        self.estimate: Estimate | None = None  # what the run expects to ask its provider for

    # -- the run --------------------------------------------------------------------------------
    async def run(self) -> RunResult:
        self.train, self.evals = self._load_data()
        grader = self.grader or load_grader(self.cfg.run.grader)
        self.grader = CachedGrader(grader, self.store)
        try:  # a refusal before the first request closes whatever was opened for the run
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
            budget = self._check_costs()  # before the run exists: bad prices or budgets
            created = self.repo.get(self.name) is None
            self._open_run()
        except BaseException:
            if not self.dry_run:  # a dry run closes its own
                await self._close()
            raise
        if budget is not None:
            self.provider.budget = BudgetGuard(  # type: ignore[union-attr]
                budget,
                _RunLedger(self.repo, self.run_id),
                self.provider.prices,  # type: ignore[union-attr]
            )
        try:
            with RunProgress(
                self.show_progress,
                provider=self.provider,
                on_progress=self.on_progress,
                cancel_check=self.cancel_check,
            ) as self.progress:
                self._log_start()
                try:
                    await self._prepare_provider()
                except IroError:
                    if created and not self.repo.spent(self.run_id).get("requests"):
                        self._discard_new_run()  # refused before any work: nothing half-written
                        created = None
                    raise
                await self.evaluate_base()
                for t in range(1, self.cfg.run.iterations + 1):
                    await self.iterate(t)
            return self._finish()
        except BaseException as e:
            if created is None:  # discarded
                raise
            status = "cancelled" if isinstance(e, Cancelled) else "failed"
            if isinstance(e, BudgetExceeded):
                status = "stopped"
            self.repo.set_status(self.run_id, status, str(e)[:2000] or type(e).__name__)
            raise
        finally:
            await self._close()

    async def _close(self) -> None:
        """Close the provider and executor the run made, and the grader."""
        if self._own_provider and self.provider is not None:
            await self.provider.aclose()
        if self._own_executor and self.executor is not None:
            await self.executor.aclose()
        await self.grader.aclose()

    # -- before any paid request: prices, budget, the plan, the API mode ------------------------
    def _check_costs(self) -> Budget | None:
        """Prices known and the budget not used up (a resumed run counts what it spent): the
        budget API providers check every request against, or None for a provider with no cost."""
        p = self.provider
        opts = self.cfg.provider
        budget = Budget(opts.max_cost, opts.max_requests, opts.max_output_tokens)
        if not costs_something(p):
            guard_provider(p, budget, what=f"provider '{opts.provider}'")  # refuses a budget
            return None
        require_prices(p)
        run = self.repo.get(self.name)
        BudgetGuard(
            budget, MemoryLedger(dict(run.spent or {}) if run else {}), p.prices
        ).check_start()
        return budget

    async def _prepare_provider(self) -> None:
        """The estimate, and (API providers) the continuation mode: whatever can refuse a run
        does so before its first paid request (only the tiny probe requests, if the endpoint
        was never probed, come before)."""
        p = self.provider
        prepare = getattr(p, "prepare", None)
        stored = getattr(p, "stored_probe", None)  # API providers: what the endpoint can do
        probed = stored is None or stored() is not None
        if probed:  # nothing to ask the endpoint first: the estimate comes before any request
            self._show_estimate(self._estimate())
        else:
            self.progress.log(f"probing {p.base_url} first: a dozen tiny requests, stored")
        if prepare is not None:
            line = await prepare(
                needs_continuation=self.cfg.search.policy == "cbs",
                chat_prompts=any(e.is_chat for e in self.train + self.evals),
            )
            self.progress.log(line)
        if not probed:  # now knowing whether the endpoint honours n
            self._show_estimate(self._estimate())
        spent = self.repo.spent(self.run_id)
        if spent.get("requests"):
            self.progress.log(f"spent before this attempt: {spent_line(spent)}")

    def _estimate(self) -> Estimate:
        p = self.provider
        prices = getattr(p, "prices", None)
        stored = p.stored_probe() if hasattr(p, "stored_probe") else None
        n_honoured = (stored or {}).get("n") if prices is not None else True
        exists = self.run_id != 0

        def remaining(t: int, phase: str, method: str, search: int, exs: list[Example]):
            if not exists:
                return exs
            done = self.repo.searched(self.run_id, t, phase, method, search)
            return [e for e in exs if self.pk[e.id] not in done]

        return estimate(
            self.cfg,
            self.train,
            self.evals,
            count=self._prompt_tokens,
            cost=prices.cost if prices is not None else (lambda _i, _o: 0.0),
            n_honoured=n_honoured,
            probe_needed=prices is not None and stored is None,
            remaining=remaining,
            train_examples=self._train_examples,
            policy=self.cfg.search.policy,
            prices_source=getattr(prices, "source", "local"),
        )

    def _prompt_tokens(self, prompt: Any) -> int:
        """Input tokens of a prompt (the chat template included where a tokenizer is known)."""
        count = getattr(self.provider, "count_prompt", None)
        if count is not None:
            return count(prompt)
        text = prompt if isinstance(prompt, str) else json.dumps(prompt)
        return len(text) // 4 + 1

    def _show_estimate(self, est: Estimate) -> None:
        t = est.total
        n = {True: "the server honours n", False: "the server ignores n: one request per sample",
             None: "not probed yet: counted as if the server ignores n, an upper bound"}[est.n_honoured]  # fmt: skip
        self.progress.log(
            f"estimate before the run's first request ({n}; prices: {est.prices_source}): "
            f"{t.requests:,} requests, {t.input_tokens:,} input and at most {t.output_tokens:,} "
            f"output tokens, ${t.cost_usd:.4f}"
        )
        for row in est.rows()[:-1]:
            self.progress.log(f"  {row[0]}: {row[2]} requests, {row[3]} in, {row[4]} out, {row[5]}")
        self.estimate = est
        b = self.cfg.provider
        spent = self.repo.spent(self.run_id) if self.run_id else {}
        over = [
            f"{flag} {limit:g}"
            for flag, limit, need in (
                ("--max-cost", b.max_cost, t.cost_usd + float(spent.get("cost_usd", 0))),
                ("--max-requests", b.max_requests, t.requests + int(spent.get("requests", 0))),
                (
                    "--max-output-tokens",
                    b.max_output_tokens,
                    t.output_tokens + int(spent.get("output_tokens", 0)),
                ),
            )  # fmt: skip
            if limit is not None and need > limit
        ]
        if over:
            self.progress.log(
                f"the estimate is above {', '.join(over)}: the run may stop at that limit "
                "(everything stored; re-run with a higher one to continue)"
            )

    async def _dry_run(self) -> RunResult:
        """The estimate only: no run is created and no request sent."""
        run = self.repo.get(self.name)
        if run is not None:
            self.run_id = run.id
            self.pk = {e.ex_id: e.pk for e in self.repo.examples(run.id)}
        self.provider = self.provider or build_provider(self.cfg.provider, self.store)
        try:
            with RunProgress(self.show_progress, provider=self.provider) as self.progress:
                est = self._estimate()
                self._show_estimate(est)
        finally:
            if self._own_provider:
                await self.provider.aclose()
            await self.grader.aclose()
        spent = self.repo.spent(run.id) if run is not None else {}
        return RunResult(self.name, 0, self.out_dir, {}, [], None, est, spent)

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
        m.update(self._provider_delta(before))
        self.repo.set_iteration(self.run_id, t, "done", m)
        self._log_iteration(t, m)

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
        by_ex = self._grouped(BASE_T, "eval", "best_of_n")
        m = metrics.base_metrics(
            {ex: [r.reward for r in rs] for ex, rs in by_ex.items()},
            {ex: [r.completion_tokens for r in rs] for ex, rs in by_ex.items()},
            n,
            grade_errors=sum(1 for rs in by_ex.values() for r in rs if r.grade_error),
        )
        m.update(self._provider_delta(before))
        self.repo.set_iteration(self.run_id, BASE_T, "done", m)
        self.progress.log(
            f"base policy: mean reward {m['eval_mean_reward']:+.3f}, "
            f"best-of-{n} {m['bon_mean_reward']:+.3f}"
        )

    # -- step 1: sample -------------------------------------------------------------------------
    async def sample(self, t: int) -> None:
        """R candidates per training prompt from pi_{t-1}."""
        exs = self._train_examples(t)
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
        by_ex = self._grouped(t, "train", method)
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
        path = self.out_dir / "value" / f"v{t}"
        prev = self.repo.value_model(self.run_id, t - 1) if warm is not None else None
        model, m, config = await self.executor.train(
            self.trainer, data, t, warm, prev.path if prev else None, path
        )
        m = _jsonable(m)
        if len(data) > originals:
            m["relabelled"] = len(data) - originals
        held = self._heldout_answers(t)
        rank = getattr(self.trainer, "rank", None)
        if held and rank is not None:
            # what the search needs, measured where V_t is used: same-prompt answers of held-out
            # prompts (pi_{t-1}'s graded answers there)
            m["heldout"] = _jsonable(rank(model, held, t=t))
        warning = ranking_warning(t, m)
        if warning:
            m["warning"] = warning
            self.progress.log(f"[yellow]warning[/yellow] {warning}")
        used = True
        gate = getattr(self.trainer, "gate", None)
        if self.cfg.value.gate and gate is not None:
            steering = [i for i, u in enumerate(self.in_use) if u]
            betas = self.cfg.search.betas(t)
            m["gate"] = _jsonable(
                gate(
                    [self.value_models[i] for i in steering],
                    [betas[i] for i in steering],
                    model,
                    betas[t - 1],
                    data,
                    t=t,
                    originals=originals,
                )
            )
            used = bool(m["gate"]["accepted"])
            verdict = "used" if used else "[yellow]NOT used[/yellow] (pi_t = pi_{t-1})"
            self.progress.log(f"gate: V_{t} {verdict}: {m['gate']['reason']}")
        self.repo.add_value_model(
            self.run_id,
            t,
            path=str(path.resolve()),
            backbone=self.cfg.value.value_backbone,
            metrics=m,
            config=_jsonable(config),
        )
        self.progress.advance(1)
        self.value_models.append(model)
        self.in_use.append(used)
        return {"value": m}

    async def _relabelled(self, t: int, data: list[RolloutData]) -> list[RolloutData]:
        """--value-relabel K: every training answer graded against K other training prompts."""
        items = {}
        for r in self.repo.rollouts(self.run_id, t, "train", self._rollout_method(t)):
            items.setdefault(r.prompt, self.items.get(r.example_id, {}))
        k = self.cfg.value.value_relabel
        self.progress.stage(f"t={t} relabelling: each answer graded for {k} other prompts", 1)
        extra = await relabel(data, items, self.grader, k=k, seed=self.cfg.run.seed + t)
        self.progress.advance(1)
        return extra

    def _gate_passed(self, t: int) -> bool:
        rec = self.repo.value_model(self.run_id, t)
        gate = ((rec.metrics or {}).get("gate") or {}) if rec is not None else {}
        return bool(gate.get("accepted", True)) or not self.cfg.value.gate

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
        by_ex = self._grouped(t, "eval", policy)
        base = self._grouped(BASE_T, "eval", "best_of_n")
        answers = {ex: _value_pick_reward(rs) for ex, rs in by_ex.items()}
        if t - 1 == BASE_T:
            prev = {ex: metrics.mean([_reward(r) for r in rs]) for ex, rs in base.items()}
        else:
            prev = {
                ex: _value_pick_reward(rs)
                for ex, rs in self._grouped(t - 1, "eval", policy).items()
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
        done = self.repo.searched(self.run_id, t, phase, method, search)
        todo = [e for e in examples if self.pk[e.id] not in done]
        self.progress.stage(label, len(examples), len(examples) - len(todo))
        if not todo:
            self.progress.finish_stage()
            return
        job = SearchJob(self.run_id, method, t, phase, search, params)

        def on_stored(tokens: int, reward: float | None) -> None:
            self.progress.advance(1, tokens=tokens, reward=reward)

        pairs = [(e, self.pk[e.id]) for e in todo]
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
            [GradeRow(r.id, r.response, self.items[r.example_id]) for r in rows],
            lambda n, mean: self.progress.advance(n, reward=mean),
        )
        self.progress.finish_stage()

    # -- set-up and bookkeeping -----------------------------------------------------------------
    def _load_data(self) -> tuple[list[Example], list[Example]]:
        run = self.cfg.run
        train = load_examples(run.data)
        if run.eval:
            evals = load_examples(run.eval)
            check_disjoint(train, evals, run.data, run.eval)
        else:
            train, evals = hold_out(train, run.eval_split, run.seed, where=run.data)
        if run.limit:
            train = train[: run.limit]
        return train, evals

    def _open_run(self) -> None:
        """Create the run, or check that the stored one has the same options and data."""
        cfg = self.cfg
        now = [(e.id, "train", e.data) for e in self.train] + [
            (e.id, "eval", e.data) for e in self.evals
        ]
        run = self.repo.get(self.name)
        if run is None:
            run = self.repo.create(self.name, cfg.to_dict(), str(self.out_dir), now)
        else:
            diff = AlignConfig.from_dict(run.config).differences(cfg)
            if diff:
                raise ConfigError(
                    f"run '{self.name}' already exists with different options ({', '.join(diff)}): "
                    "choose another --run-name, or --resume it with its own options"
                )
            stored = {e.ex_id: e.data for e in self.repo.examples(run.id)}
            if stored != {ex_id: data for ex_id, _, data in now}:
                raise InputError(
                    f"run '{self.name}': the data files changed since the run started "
                    "(examples differ); start a new run (--run-name)"
                )
            if run.out_dir:
                self.out_dir = Path(run.out_dir)
        self.run_id = run.id
        self.repo.set_status(run.id, "running")
        for e in self.repo.examples(run.id):
            self.pk[e.ex_id] = e.pk
            self.items[e.pk] = e.data
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "config.json").write_text(
            json.dumps({"run": self.name, **cfg.to_dict()}, indent=2)
        )

    def _discard_new_run(self) -> None:
        """Remove a run this attempt created, when it was refused before doing anything."""
        self.repo.delete(self.run_id)
        cfg_file = self.out_dir / "config.json"
        cfg_file.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.out_dir.rmdir()  # only if nothing else is in it

    def _log_start(self) -> None:
        cfg = self.cfg
        try:
            info = self.provider.describe()
        except Exception as e:  # describe must never stop a run
            info = {"error": str(e)}
        self.repo.set_provider_info(self.run_id, _jsonable(info))
        self.progress.log(
            f"run [bold]{self.name}[/bold]: {len(self.train)} training / {len(self.evals)} held-out "
            f"prompts, {cfg.run.iterations} iterations, W={cfg.search.w} K={cfg.search.k} "
            f"L={cfg.search.l}, model {cfg.provider.model} ({cfg.provider.provider}), "
            f"store {self.store.display_url}"
        )

    def _log_iteration(self, t: int, m: dict[str, Any]) -> None:
        base = self.repo.iteration(self.run_id, BASE_T).metrics
        self.progress.log(
            f"t={t}: held-out reward {m['eval_mean_reward']:+.3f} "
            f"(grader pick {m['eval_grader_reward']:+.3f}; base {base.get('eval_mean_reward', 0):+.3f}, "
            f"best-of-{base.get('bon_n')} {base.get('bon_mean_reward', 0):+.3f}), "
            f"win rate vs base {m['win_rate_vs_base']:.2f}"
        )

    def _finish(self) -> RunResult:
        iterations = self.repo.iterations(self.run_id)
        summary = metrics.summary(iterations)
        self.repo.finish(self.run_id, summary)
        spent = self.repo.spent(self.run_id)
        report = write_report(
            self.name, self.cfg.to_dict(), iterations, summary, self.out_dir, spent
        )
        return RunResult(
            self.name, self.run_id, self.out_dir, summary, iterations, report, self.estimate, spent
        )

    def _load_value_model(self, t: int) -> Any:
        rec = self.repo.value_model(self.run_id, t)
        if rec is None or not Path(rec.path).is_dir():
            raise InputError(
                f"run '{self.name}': iteration {t} is done but its value model is missing"
                + (f" at {rec.path}" if rec is not None else "")
            )
        return self.trainer.load(rec.path)

    def _train_examples(self, t: int) -> list[Example]:
        if not self.cfg.run.fresh_prompts:
            return self.train
        size = math.ceil(len(self.train) / self.cfg.run.iterations)
        return self.train[(t - 1) * size : t * size] or self.train

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

    def _grouped(self, t: int, phase: str, method: str) -> dict[int, list[Any]]:
        out: dict[int, list[Any]] = {}
        for r in self.repo.rollouts(self.run_id, t, phase, method):
            out.setdefault(r.example_id, []).append(r)
        return out

    def _provider_delta(self, before: dict[str, Any]) -> dict[str, Any]:
        now = self.provider.stats.snapshot()
        return {
            "requests": now.get("requests", 0) - before.get("requests", 0),
            "cache_hits": now.get("cache_hits", 0) - before.get("cache_hits", 0),
            "cost_usd": round(now.get("cost_usd", 0.0) - before.get("cost_usd", 0.0), 6),
        }


class _RunLedger:
    """A run's spending in the store (budgets count every attempt's)."""

    def __init__(self, repo: RunRepository, run_id: int):
        self.repo, self.run_id = repo, run_id

    def spent(self) -> dict[str, Any]:
        return self.repo.spent(self.run_id)

    def add(self, **amounts: float) -> dict[str, Any]:
        return self.repo.add_spent(self.run_id, **amounts)


def _reward(row: Any) -> float:
    return metrics.reward_or_zero(row.reward)


def _value_pick_reward(rows: list[Any]) -> float:
    """The reward of the row cbs answers with by value score alone (no grader)."""
    return _reward(rows[value_pick([r.response for r in rows], [r.score for r in rows])])


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))


MIN_WARN_PAIRS = 50  # fewer pairs than this measure too little to warn on


def ranking_warning(t: int, m: dict[str, Any]) -> str | None:
    """A plain warning when V_t ranks same-prompt prefixes barely better than chance, on the
    held-out prompts' answers or on its own validation split (either, with enough pairs)."""
    held = m.get("heldout") or {}
    measured = [
        (held.get("accuracy"), held.get("pairs"), "held-out prompts' answers"),
        (m.get("val_pairwise_accuracy"), m.get("val_pairs"), "validation prefixes"),
    ]
    poor = [x for x in measured if barely_above_chance(x[0]) and (x[1] or 0) >= MIN_WARN_PAIRS]
    if not poor:
        return None
    acc, pairs, where = poor[0]
    return (
        f"V_{t} ranks {where} of the same prompt "
        f"{'below' if acc < 0.5 else 'barely above'} chance (pair accuracy "
        f"{acc:.2f}, chance 0.50, over {pairs} pairs), so guided search will steer "
        "little: more or fresh prompts (--fresh-prompts), more rollouts (--rollouts), another "
        "objective (--value-loss) or a bigger backbone (--value-backbone) would help"
    )
