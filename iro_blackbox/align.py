"""The IRO loop: the one place that knows the order of the steps.

    run = iro_blackbox.align("mydata.jsonl", grader="sentiment", iterations=2)
    policy = iro_blackbox.load_run(run.name)
    policy.generate(["Tell me about Mondays."])

Iteration t = 1..T (see DESIGN.md):
  1. rollouts: R candidates per training prompt from pi_{t-1} (t=1: plain sampling; t>1:
     chunk-level beam search guided by V_1..V_{t-1}, ceil(R/W) searches with different seeds),
  2. reweight: grade them; keep the best per prompt (or resample weights ∝ exp(r/tau)),
  3. optimize: train V_t on every prefix of the training rollouts (MSE onto the final reward),
  4. evaluate pi_t (CBS guided by V_1..V_t) on held-out prompts: its reward is that of the answer
     the value models pick (no grader at decode time); the grader's pick among the same answers
     is recorded beside it, as is the gain over pi_{t-1} paired by prompt.
Before iteration 1 the base policy is evaluated: N = W*K samples per held-out prompt give the base
mean reward, Best-of-N at equal compute, and the base answer (sample 0) for win rates.

Every step writes to the store as it goes, so a killed run re-run with the same command (or
`resume=RUN`) continues: prompts that have rollouts are skipped, API responses replay from the
request cache, and finished value models are loaded instead of trained again.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from .align_config import AlignConfig
from .dataset import Example, load_examples, prompt_text
from .errors import ConfigError, InputError
from .progress import RunProgress
from .store import Example as ExampleRow
from .store import Iteration, Rollout, Run, Store, ValueModelRecord, default_home, open_store
from .store.schema import utcnow
from .utils import derive_seed, mean_stderr

BASE_T = 0  # iteration index of the base-policy evaluation


@dataclass
class RunResult:
    """What align() returns: where the run lives and its per-iteration metrics."""

    name: str
    id: int
    out_dir: Path
    metrics: dict[str, Any]
    iterations: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None


# ---------------------------------------------------------------------------------------------
# entry points


def align(
    data: str | Path | None = None,
    *,
    db: str | Store | None = None,
    progress: bool = True,
    cancel_check: Callable[[], bool] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    resume: str | None = None,
    **options: Any,
) -> RunResult:
    """Run (or resume) IRO on a JSONL file of prompts. Options are AlignConfig's fields."""
    return asyncio.run(
        align_async(
            data,
            db=db,
            progress=progress,
            cancel_check=cancel_check,
            on_progress=on_progress,
            resume=resume,
            **options,
        )
    )


async def align_async(
    data: str | Path | None = None,
    *,
    db: str | Store | None = None,
    progress: bool = True,
    cancel_check: Callable[[], bool] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    resume: str | None = None,
    **options: Any,
) -> RunResult:
    store = db if isinstance(db, Store) else open_store(db)
    if resume:
        cfg = _config_of_run(store, resume, options)
    else:
        if data is None:
            raise InputError("align: a data file is required (or resume=RUN)")
        cfg = AlignConfig.from_dict({**options, "data": str(data)})
    loop = AlignLoop(
        cfg, store, progress=progress, cancel_check=cancel_check, on_progress=on_progress
    )
    return await loop.run()


def _config_of_run(store: Store, run: str, overrides: dict[str, Any]) -> AlignConfig:
    from .runs import find_run

    row = find_run(store, run)
    d = dict(row.config)
    # only options that do not change results may differ when resuming
    for k, v in overrides.items():
        if v is None:
            continue
        if k in AlignConfig._NOT_IDENTITY:
            d[k] = v
        elif d.get(k) != v:
            raise ConfigError(
                f"--resume {run}: option {k}={v!r} differs from the run's {d.get(k)!r}; "
                "start a new run instead"
            )
    d["run_name"] = row.name
    return AlignConfig.from_dict(d)


# ---------------------------------------------------------------------------------------------
# the loop


class AlignLoop:
    def __init__(
        self,
        cfg: AlignConfig,
        store: Store,
        progress: bool = True,
        cancel_check: Callable[[], bool] | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ):
        self.cfg = cfg
        self.store = store
        self.show_progress = progress
        self.cancel_check = cancel_check
        self.on_progress = on_progress
        self.name = cfg.run_name or cfg.default_run_name()
        self.out_dir = Path(cfg.out) if cfg.out else default_home() / self.name
        self.run_id: int = 0
        self.pk: dict[str, int] = {}  # example id -> examples.id

    # -- set-up ---------------------------------------------------------------------------------

    def _load_data(self) -> tuple[list[Example], list[Example]]:
        cfg = self.cfg
        train = load_examples(cfg.data)
        if cfg.eval:
            evals = load_examples(cfg.eval)
            clash = {e.id for e in train} & {e.id for e in evals}
            if clash:
                raise InputError(
                    f"{cfg.eval}: ids also in {cfg.data}: {', '.join(sorted(clash)[:5])} "
                    "(held-out prompts must be distinct)"
                )
        else:
            order = list(range(len(train)))
            random.Random(derive_seed(cfg.seed, "eval-split")).shuffle(order)
            n_eval = max(1, round(len(train) * cfg.eval_split))
            if len(train) - n_eval < 1:
                raise InputError(
                    f"{cfg.data}: too few examples ({len(train)}) to hold out an eval split"
                )
            held = set(order[:n_eval])
            evals = [e for i, e in enumerate(train) if i in held]
            train = [e for i, e in enumerate(train) if i not in held]
        if cfg.limit:
            train = train[: cfg.limit]
        return train, evals

    def _open_run(self, train: list[Example], evals: list[Example]) -> None:
        cfg = self.cfg
        ident = cfg.identity()
        with self.store.session() as s:
            run = s.scalar(select(Run).where(Run.name == self.name))
            if run is None:
                run = Run(
                    name=self.name,
                    status="created",
                    config=cfg.to_dict(),
                    out_dir=str(self.out_dir),
                )
                s.add(run)
                s.flush()
                for split, exs in (("train", train), ("eval", evals)):
                    for e in exs:
                        s.add(ExampleRow(run_id=run.id, ex_id=e.id, split=split, data=e.data))
            else:
                old = AlignConfig.from_dict(run.config).identity()
                if old != ident:
                    diff = sorted(k for k in set(old) | set(ident) if old.get(k) != ident.get(k))
                    raise ConfigError(
                        f"run '{self.name}' already exists with different options ({', '.join(diff)}): "
                        "choose another --run-name, or --resume it with its own options"
                    )
                stored = {
                    r.ex_id: r.data
                    for r in s.scalars(select(ExampleRow).where(ExampleRow.run_id == run.id))
                }
                now = {e.id: e.data for e in train + evals}
                if stored != now:
                    raise InputError(
                        f"run '{self.name}': the data files changed since the run started "
                        "(examples differ); start a new run (--run-name)"
                    )
                if run.out_dir:
                    self.out_dir = Path(run.out_dir)
            run.status = "running"
            run.error = None
            self.run_id = run.id
            for r in s.scalars(select(ExampleRow).where(ExampleRow.run_id == run.id)):
                self.pk[r.ex_id] = r.id
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "config.json").write_text(
            json.dumps({"run": self.name, **cfg.to_dict()}, indent=2)
        )

    # -- helpers --------------------------------------------------------------------------------

    def _params(self, *, seed_tag: Any, n: int | None = None, final: str = "auto"):
        from .params import SamplingParams
        from .search import SearchParams

        cfg = self.cfg
        sampling = SamplingParams(
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            seed=derive_seed(cfg.seed, seed_tag) % (2**31),
        )
        return SearchParams(
            w=cfg.w,
            k=cfg.k,
            l=cfg.l,
            max_tokens=cfg.max_tokens,
            n=n,
            selection=cfg.selection,
            sampling=sampling,
            final=final,
            concurrency=max(4, cfg.concurrency),
        )

    def _save_result(
        self, t: int, phase: str, method: str, result: Any, idx_offset: int = 0
    ) -> None:
        ex_pk = self.pk[result.example.id]
        ptext = prompt_text(result.example.prompt)
        with self.store.session() as s:
            for i, c in enumerate(result.candidates):
                s.add(
                    Rollout(
                        run_id=self.run_id,
                        t=t,
                        phase=phase,
                        method=method,
                        example_id=ex_pk,
                        idx=idx_offset + i,
                        prompt=ptext,
                        response=c.text,
                        reward=c.reward,
                        grade_error=c.grade_error,
                        score=c.score,
                        selected=bool(c.selected),
                        finish_reason=c.finish_reason,
                        completion_tokens=c.completion_tokens,
                        usage=result.usage.to_dict() if c.selected else {},
                    )
                )

    async def _search(
        self,
        method: str,
        examples: list[Example],
        params: Any,
        scorer: Any,
        t: int,
        phase: str,
        store_method: str,
        idx_offset: int = 0,
        label: str = "",
    ) -> None:
        """Search the examples that have no stored rollouts yet, writing each as it finishes."""
        from .search import SEARCHES

        # a prompt counts as done when its rows for this (t, phase, method) exist; with several
        # searches per prompt (idx_offset) the done-set is per offset
        done = self._done_offsets(t, phase, store_method, idx_offset)
        todo = [e for e in examples if self.pk[e.id] not in done]
        self.progress.stage(
            label or f"{phase} {method} t={t}", len(examples), len(examples) - len(todo)
        )
        if not todo:
            self.progress.finish_stage()
            return

        def on_result(result: Any) -> None:
            self._save_result(t, phase, store_method, result, idx_offset)
            self.progress.advance(
                1,
                tokens=result.usage.completion_tokens,
                reward=result.best.reward if result.best.reward is not None else None,
            )

        if self.cfg.batch_api and method in ("sample", "best_of_n"):
            from .jobs.batch_api import prefetch_search

            await prefetch_search(todo, self.provider, params, cancel_check=self.cancel_check)
        await SEARCHES[method](
            todo, self.provider, scorer, params, grader=self.grader, on_result=on_result
        )
        self.progress.finish_stage()

    def _done_offsets(self, t: int, phase: str, method: str, idx_offset: int) -> set[int]:
        with self.store.session() as s:
            rows = s.scalars(
                select(Rollout.example_id)
                .where(
                    Rollout.run_id == self.run_id,
                    Rollout.t == t,
                    Rollout.phase == phase,
                    Rollout.method == method,
                    Rollout.idx >= idx_offset,
                    Rollout.idx < idx_offset + 100000,
                )
                .distinct()
            ).all()
        return set(rows)

    def _scorer(self, upto: int):
        from .search import CombinedScorer

        return CombinedScorer(
            self.value_models[:upto], [self.cfg.beta] * min(upto, len(self.value_models))
        )

    def _rows(self, t: int, phase: str, method: str) -> list[Rollout]:
        with self.store.session() as s:
            return list(
                s.scalars(
                    select(Rollout)
                    .where(
                        Rollout.run_id == self.run_id,
                        Rollout.t == t,
                        Rollout.phase == phase,
                        Rollout.method == method,
                    )
                    .order_by(Rollout.example_id, Rollout.idx)
                )
            )

    def _iteration(self, t: int) -> Iteration:
        with self.store.session() as s:
            it = s.scalar(
                select(Iteration).where(Iteration.run_id == self.run_id, Iteration.t == t)
            )
            if it is None:
                it = Iteration(run_id=self.run_id, t=t, stage="pending", metrics={})
                s.add(it)
            return it

    def _set_iteration(self, t: int, stage: str, metrics: dict[str, Any] | None = None) -> None:
        with self.store.session() as s:
            it = s.scalar(
                select(Iteration).where(Iteration.run_id == self.run_id, Iteration.t == t)
            )
            it.stage = stage
            if metrics:
                it.metrics = {**(it.metrics or {}), **metrics}
            if stage == "done":
                it.finished_at = utcnow()

    def _provider_delta(self, before: dict[str, Any]) -> dict[str, Any]:
        now = self.provider.stats.snapshot()
        return {
            "requests": now.get("requests", 0) - before.get("requests", 0),
            "cache_hits": now.get("cache_hits", 0) - before.get("cache_hits", 0),
            "cost_usd": round(now.get("cost_usd", 0.0) - before.get("cost_usd", 0.0), 6),
        }

    # -- stages ---------------------------------------------------------------------------------

    async def _eval_base(self) -> None:
        it = self._iteration(BASE_T)
        if it.stage == "done":
            return
        before = self.provider.stats.snapshot()
        n = self.cfg.w * self.cfg.k
        params = self._params(seed_tag=("eval-base",), n=n, final="grader")
        await self._search(
            "best_of_n",
            self.evals,
            params,
            None,
            BASE_T,
            "eval",
            "sample",
            label=f"evaluate base policy + best-of-{n}",
        )
        rows = self._rows(BASE_T, "eval", "sample")
        by_ex = _group(rows)
        bon = _mean([max(_r(r) for r in rs) for rs in by_ex.values()])
        m: dict[str, Any] = {
            "eval_mean_reward": _mean([r.reward for r in rows]),
            "eval_reward_stderr": _stderr([_mean([_r(r) for r in rs]) for rs in by_ex.values()]),
            "base_first_reward": _mean([rs[0].reward for rs in by_ex.values()]),
            "bon_mean_reward": bon,
            "eval_grader_reward": bon,  # Best-of-N is the grader's pick among the base samples
            "eval_answers_per_prompt": n,
            "bon_n": n,
            "bon_tokens_per_prompt": _mean(
                [sum(r.completion_tokens for r in rs) for rs in by_ex.values()]
            ),
            "base_tokens_per_prompt": _mean([r.completion_tokens for r in rows]),
            "bon_curve": _bon_curve(by_ex),
            "grade_errors": sum(1 for r in rows if r.grade_error),
            "tokens": sum(r.completion_tokens for r in rows),
            **self._provider_delta(before),
        }
        self._set_iteration(BASE_T, "done", m)
        self.progress.log(
            f"base policy: mean reward {m['eval_mean_reward']:+.3f}, best-of-{n} {m['bon_mean_reward']:+.3f}"
        )

    def _train_examples_for(self, t: int) -> list[Example]:
        if not self.cfg.fresh_prompts:
            return self.train
        T = self.cfg.iterations
        size = math.ceil(len(self.train) / T)
        part = self.train[(t - 1) * size : t * size]
        return part or self.train

    async def _rollouts(self, t: int) -> None:
        exs = self._train_examples_for(t)
        R = self.cfg.n_rollouts
        if t == 1:
            params = self._params(seed_tag=("train", t), n=R)
            await self._search(
                "sample",
                exs,
                params,
                None,
                t,
                "train",
                "sample",
                label=f"t={t} rollouts: {R} samples per prompt",
            )
            return
        runs = math.ceil(self.cfg.n_guided_rollouts / self.cfg.w)
        for r in range(runs):
            params = self._params(seed_tag=("train", t, r), final="score")
            await self._search(
                "cbs",
                exs,
                params,
                self._scorer(t - 1),
                t,
                "train",
                "cbs",
                idx_offset=r * 100000,
                label=f"t={t} rollouts: guided search {r + 1}/{runs}",
            )

    def _rollout_method(self, t: int) -> str:
        return "sample" if t == 1 else "cbs"

    async def _grade_missing(self, t: int, phase: str, method: str) -> None:
        """Grade rows without a reward (sampling does not grade; cbs grades its finals)."""
        rows = [
            r for r in self._rows(t, phase, method) if r.reward is None and r.grade_error is None
        ]
        if not rows:
            return
        items = {}
        with self.store.session() as s:
            for r in s.scalars(select(ExampleRow).where(ExampleRow.run_id == self.run_id)):
                items[r.id] = r.data
        self.progress.stage(f"t={t} grading", len(rows))
        B = 64
        for i in range(0, len(rows), B):
            part = rows[i : i + B]
            grades = await self.grader.grade(
                [r.response for r in part], [items[r.example_id] for r in part]
            )
            with self.store.session() as s:
                for r, g in zip(part, grades, strict=True):
                    row = s.get(Rollout, r.id)
                    row.reward = float(g.score)
                    row.grade_error = g.error
            self.progress.advance(len(part), reward=_mean([g.score for g in grades]))
        self.progress.finish_stage()

    def _reweight(self, t: int) -> dict[str, Any]:
        """Mark the kept candidate per prompt (best), or set resampling weights ∝ exp(r/tau)."""
        method = self._rollout_method(t)
        rows = self._rows(t, "train", method)
        by_ex = _group(rows)
        with self.store.session() as s:
            for rs in by_ex.values():
                rewards = [_r(r) for r in rs]
                best = max(range(len(rs)), key=lambda i: rewards[i])
                if self.cfg.reweight == "best":
                    weights = [1.0 if i == best else 0.0 for i in range(len(rs))]
                else:
                    mx = max(rewards)
                    ex = [math.exp((x - mx) / self.cfg.tau) for x in rewards]
                    z = sum(ex)
                    weights = [e / z * len(rs) for e in ex]
                for i, r in enumerate(rs):
                    row = s.get(Rollout, r.id)
                    row.selected = i == best
                    row.weight = weights[i]
        return {
            "train_mean_reward": _mean([_r(r) for r in rows]),
            "train_best_reward": _mean([max(_r(r) for r in rs) for rs in by_ex.values()]),
            "train_rollouts": len(rows),
            "train_prompts": len(by_ex),
            "grade_errors": sum(1 for r in rows if r.grade_error),
        }

    def _value_dir(self, t: int) -> Path:
        return self.out_dir / "value" / f"v{t}"

    def _load_or_train_value(self, t: int) -> dict[str, Any]:
        from .value import (
            ValueConfig,
            ValueModel,
            ValueTrainConfig,
            make_value_examples,
            train_value_model,
        )

        path = self._value_dir(t)
        with self.store.session() as s:
            rec = s.scalar(
                select(ValueModelRecord).where(
                    ValueModelRecord.run_id == self.run_id, ValueModelRecord.t == t
                )
            )
        if rec is not None and Path(rec.path).is_dir():
            self.value_models.append(ValueModel.load(rec.path))
            return {"value": rec.metrics}
        cfg = self.cfg
        rows = self._rows(t, "train", self._rollout_method(t))
        if cfg.value_data == "selected":
            data = [(r.prompt, r.response, _r(r), 1.0) for r in rows if r.selected]
        else:
            data = [
                (r.prompt, r.response, _r(r), 1.0 if cfg.reweight == "best" else (r.weight or 0.0))
                for r in rows
            ]
        device = cfg.device or "auto"
        tcfg = ValueTrainConfig(
            model=ValueConfig(backbone=cfg.value_backbone, device=device),
            tuning=cfg.value_tuning,
            lr=cfg.value_lr if cfg.value_tuning == "full" else None,
            epochs=cfg.value_epochs,
            chunk_tokens=cfg.l,
            seed=cfg.seed + t,
        )
        examples = make_value_examples(data, tcfg)
        warm = self.value_models[-1] if (cfg.warm_start and self.value_models) else None
        self.progress.stage(f"t={t} training value model V_{t} ({len(examples)} prefixes)", 1)
        model, metrics = train_value_model(
            examples,
            tcfg,
            warm_start=warm,
            progress=self.show_progress,
            store=self.store,
            run_id=self.run_id,
            t=t,
            out_dir=path,
        )
        if not (path / "config.json").exists() and not any(path.glob("*")):
            model.save(path)
        with self.store.session() as s:
            rec = s.scalar(
                select(ValueModelRecord).where(
                    ValueModelRecord.run_id == self.run_id, ValueModelRecord.t == t
                )
            )
            if rec is None:
                s.add(
                    ValueModelRecord(
                        run_id=self.run_id,
                        t=t,
                        path=str(path),
                        backbone=cfg.value_backbone,
                        metrics=_jsonable(metrics),
                        config=tcfg.to_dict(),
                    )
                )
        self.progress.advance(1)
        self.value_models.append(model)
        return {"value": _jsonable(metrics)}

    async def _eval_policy(self, t: int) -> dict[str, Any]:
        params = self._params(seed_tag=("eval", t), final="grader")
        await self._search(
            "cbs",
            self.evals,
            params,
            self._scorer(t),
            t,
            "eval",
            "iro",
            label=f"t={t} evaluate pi_{t} (guided search)",
        )
        by_ex = _group(self._rows(t, "eval", "iro"))
        base = _group(self._rows(BASE_T, "eval", "sample"))
        # the policy's answer is the value pick (no grader at decode time: what `generate` and
        # `serve` return); the grader pick is the best of its complete answers by the grader, as
        # Best-of-N picks the best of its N samples
        policy = {ex: _value_pick(rs) for ex, rs in by_ex.items()}
        # the gain over pi_{t-1} (t=1: the base policy's mean), paired by prompt
        if t - 1 == BASE_T:
            prev = {ex: _mean([_r(r) for r in rs]) for ex, rs in base.items()}
        else:
            prev = {
                ex: _r(_value_pick(rs))
                for ex, rs in _group(self._rows(t - 1, "eval", "iro")).items()
            }
        gains = [_r(r) - prev[ex] for ex, r in policy.items() if ex in prev]
        graded = {ex: next((r for r in rs if r.selected), rs[0]) for ex, rs in by_ex.items()}
        wins = []
        for ex, r in policy.items():
            if ex in base:
                b = _r(base[ex][0])
                wins.append(1.0 if _r(r) > b else 0.5 if _r(r) == b else 0.0)
        usage = [next((x.usage for x in rs if x.usage), {}) for rs in by_ex.values()]
        return {
            "eval_mean_reward": _mean([_r(r) for r in policy.values()]),
            "eval_reward_stderr": _stderr([_r(r) for r in policy.values()]),
            "eval_gain": _mean(gains),
            "eval_gain_stderr": _stderr(gains),
            "eval_grader_reward": _mean([_r(r) for r in graded.values()]),
            "eval_answers_per_prompt": _mean([len(rs) for rs in by_ex.values()]),
            "win_rate_vs_base": _mean(wins),
            "eval_tokens_per_prompt": _mean([u.get("completion_tokens", 0) for u in usage]),
            "eval_prompts": len(by_ex),
        }

    # -- main -----------------------------------------------------------------------------------

    async def run(self) -> RunResult:
        from .graders import load_grader

        cfg = self.cfg
        self.train, self.evals = self._load_data()
        self.grader = self._make_grader(load_grader)
        self.grader.check_items([e.data for e in self.train + self.evals])
        self._open_run(self.train, self.evals)
        from .adapters.factory import build_provider

        self.provider = build_provider(cfg, self.store)
        self.value_models: list[Any] = []
        try:
            with RunProgress(
                self.show_progress,
                provider=self.provider,
                on_progress=self.on_progress,
                cancel_check=self.cancel_check,
            ) as self.progress:
                self.progress.log(
                    f"run [bold]{self.name}[/bold]: {len(self.train)} training / {len(self.evals)} held-out "
                    f"prompts, {cfg.iterations} iterations, W={cfg.w} K={cfg.k} L={cfg.l}, "
                    f"model {cfg.model} ({cfg.provider}), store {self.store.display_url}"
                )
                self._record_provider()
                await self._eval_base()
                for t in range(1, cfg.iterations + 1):
                    await self._iterate(t)
            result = self._finish()
        except BaseException as e:
            with self.store.session() as s:
                run = s.get(Run, self.run_id)
                from .errors import Cancelled

                run.status = "cancelled" if isinstance(e, Cancelled) else "failed"
                run.error = str(e)[:2000] or type(e).__name__
            raise
        finally:
            await self.provider.aclose()
            await self.grader.aclose()
        return result

    def _make_grader(self, load_grader: Any) -> Any:
        from .graders import CachedGrader

        return CachedGrader(load_grader(self.cfg.grader), self.store)

    def _record_provider(self) -> None:
        try:
            info = self.provider.describe()
        except Exception as e:  # describe must never stop a run
            info = {"error": str(e)}
        with self.store.session() as s:
            s.get(Run, self.run_id).provider_info = _jsonable(info)

    async def _iterate(self, t: int) -> None:
        it = self._iteration(t)
        if it.stage == "done":
            self._load_or_train_value(t)
            return
        before = self.provider.stats.snapshot()
        tokens_before = self._tokens_so_far()
        await self._rollouts(t)
        await self._grade_missing(t, "train", self._rollout_method(t))
        m = self._reweight(t)
        self._set_iteration(t, "reweighted", m)
        m.update(self._load_or_train_value(t))
        self._set_iteration(t, "trained", m)
        m.update(await self._eval_policy(t))
        m["tokens"] = self._tokens_so_far() - tokens_before
        m.update(self._provider_delta(before))
        self._set_iteration(t, "done", m)
        base = self._iteration(BASE_T).metrics
        self.progress.log(
            f"t={t}: held-out reward {m['eval_mean_reward']:+.3f} "
            f"(grader pick {m['eval_grader_reward']:+.3f}; base {base.get('eval_mean_reward', 0):+.3f}, "
            f"best-of-{base.get('bon_n')} {base.get('bon_mean_reward', 0):+.3f}), "
            f"win rate vs base {m['win_rate_vs_base']:.2f}"
        )

    def _tokens_so_far(self) -> int:
        with self.store.session() as s:
            # a search stores its usage on one of its rows (the answer it picked; the reweight
            # step may move `selected` later); samples are counted row by row
            usages = s.scalars(
                select(Rollout.usage).where(
                    Rollout.run_id == self.run_id, Rollout.method != "sample"
                )
            ).all()
            total = sum(int((u or {}).get("completion_tokens", 0)) for u in usages)
            sampled = s.scalar(
                select(func.coalesce(func.sum(Rollout.completion_tokens), 0)).where(
                    Rollout.run_id == self.run_id, Rollout.method == "sample"
                )
            )
        return total + int(sampled or 0)

    def _finish(self) -> RunResult:
        from .report import write_report

        with self.store.session() as s:
            its = s.scalars(
                select(Iteration).where(Iteration.run_id == self.run_id).order_by(Iteration.t)
            ).all()
            iterations = [{"t": i.t, "stage": i.stage, "metrics": i.metrics} for i in its]
            run = s.get(Run, self.run_id)
            summary = _summary(iterations)
            run.metrics = summary
            run.status = "done"
        report = write_report(self.name, self.cfg.to_dict(), iterations, summary, self.out_dir)
        return RunResult(self.name, self.run_id, self.out_dir, summary, iterations, report)


# ---------------------------------------------------------------------------------------------
# small pure helpers


def _r(row: Rollout) -> float:
    return float(row.reward) if row.reward is not None else 0.0


def _mean(xs: list[Any]) -> float | None:
    xs = [float(x) for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _stderr(xs: list[Any]) -> float | None:
    """Standard error of the mean (over prompts)."""
    return mean_stderr([float(x) for x in xs if x is not None])[1]


def _group(rows: list[Rollout]) -> dict[int, list[Rollout]]:
    out: dict[int, list[Rollout]] = {}
    for r in rows:
        out.setdefault(r.example_id, []).append(r)
    return out


def _value_pick(rows: list[Rollout]) -> Rollout:
    """The row cbs would answer with by value score alone (search.value_pick)."""
    from .search import value_pick

    return rows[value_pick([r.response for r in rows], [r.score for r in rows])]


def _bon_curve(by_ex: dict[int, list[Rollout]]) -> list[dict[str, float]]:
    """Best-of-n for n = 1, 2, 4, ... N from the first n samples: reward vs tokens (equal compute)."""
    if not by_ex:
        return []
    N = min(len(rs) for rs in by_ex.values())
    out, n = [], 1
    while n <= N:
        out.append(
            {
                "n": n,
                "reward": _mean([max(_r(r) for r in rs[:n]) for rs in by_ex.values()]),
                "tokens_per_prompt": _mean(
                    [sum(r.completion_tokens for r in rs[:n]) for rs in by_ex.values()]
                ),
            }
        )
        n *= 2
    return out


def _summary(iterations: list[dict[str, Any]]) -> dict[str, Any]:
    base = next((i["metrics"] for i in iterations if i["t"] == BASE_T), {})
    last = [i for i in iterations if i["t"] > BASE_T and i["stage"] == "done"]
    out = {
        "base_mean_reward": base.get("eval_mean_reward"),
        "bon_mean_reward": base.get("bon_mean_reward"),
        "bon_n": base.get("bon_n"),
    }
    if last:
        m = last[-1]["metrics"]
        out.update(
            {
                "iterations": last[-1]["t"],
                "iro_mean_reward": m.get("eval_mean_reward"),
                "iro_grader_reward": m.get("eval_grader_reward"),
                "win_rate_vs_base": m.get("win_rate_vs_base"),
                "cbs_single_value_reward": last[0]["metrics"].get("eval_mean_reward"),
            }
        )
    return out


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))


def load_run(run: str | int, db: str | Store | None = None, **overrides: Any):
    """The aligned policy of a finished (or partly finished) run: `.generate(prompts)`."""
    from .policy import load_run as _load

    return _load(run, db=db, **overrides)
