"""`iro-bb eval`: the aligned policy against the baselines at equal compute (N = W*K samples).

Methods:
  base  the base policy: mean reward over N samples per prompt (its first sample is the reference
        for win rates)
  bon   Best-of-N by the grader over those N samples
  cbs   the run's policy guided by V_1 alone (CBS with a single value model)
  iro   the run's policy guided by V_1..V_T (the aligned policy)
  greedy  the base policy's one greedy answer per prompt (temperature 0; model cards report
        benchmarks this way; not by default)
  rerank  N = W*K whole base answers, the best by V_1..V_T (value-reranked sampling: the same
        value models choosing among complete answers instead of steering one; not by default)
The run's policy is chunk-level beam search, or for a run with --policy rerank N = W*K whole
answers reranked by the value models (value-reranked sampling).
cbs and iro answer by value score alone (no grader at decode time: what `iro-bb generate` returns);
"grader pick" is the best of their complete answers (about W*K) by the grader, as Best-of-N
picks the best of its N. Figures are computed as align computes them (metrics.py).
With another provider or model to steer (load_run's overrides, steer.py), every method runs on
that model (its own base samples, Best-of-N, and CBS guided by the run's value models), and the
result says so under "steered"; nothing of it is stored as the run's own.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from ..dataset import load_examples
from ..errors import ConfigError
from ..progress import RunProgress
from ..providers.budget import Budget
from ..search import value_pick
from ..store import Store
from . import metrics
from .policy import load_run

METHODS = ("base", "bon", "cbs", "iro", "rerank", "greedy")
DEFAULT_METHODS = ("base", "bon", "cbs", "iro")


def evaluate(
    run: str | int,
    data: str | Path,
    *,
    methods: list[str] | tuple[str, ...] = DEFAULT_METHODS,
    db: str | Store | None = None,
    progress: bool = True,
    limit: int | None = None,
    budget: Budget | None = None,
    budgets: list[int] | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every method on `data` at equal compute. `budget`: limits on this call's API spending.
    `budgets`: also the aligned policy at these search sizes W*K (the equal-compute picture,
    beside the Best-of-n curve of the base samples, n up to the largest budget). `overrides`:
    provider options that do not change what the run learned (e.g. {"rpm": 60}), see load_run."""
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ConfigError(f"unknown method(s) {', '.join(bad)}: choose from {', '.join(METHODS)}")
    for b in budgets or []:
        if isinstance(b, bool) or not isinstance(b, int) or b < 1:
            raise ConfigError(f"budgets are search sizes W*K >= 1, got {b!r}")
    examples = load_examples(data)
    if limit:
        examples = examples[:limit]
    return asyncio.run(
        _evaluate(
            run, examples, list(methods), db, progress, str(data), budget, budgets or [],
            overrides or {},
        )
    )  # fmt: skip


def budget_shape(b: int, k: int) -> tuple[int, int]:
    """(W, K) of search size b: K the run's K where it fits, W = b // K."""
    k = max(1, min(k, b))
    return max(1, b // k), k


async def _evaluate(
    run: Any,
    examples: list,
    methods: list[str],
    db: Any,
    progress: bool,
    data_name: str,
    budget: Budget | None = None,
    budgets: list[int] | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    policy = load_run(run, db=db, budget=budget, **(overrides or {}))
    grader = policy.grader
    cfg = policy.cfg
    N = max([cfg.search.n, *(budgets or [])])  # base samples: enough for the Best-of-n curve
    rows: dict[str, dict[str, Any]] = {}
    steering, mode = policy.steering, None
    try:
        with RunProgress(progress, provider=policy.provider) as prog:
            if steering is not None:  # align's probe and refusal, before any sample
                mode = await policy.aprepare(chat_prompts=any(e.is_chat for e in examples))
                prog.log(f"steering {steering.label()}: {mode}" if mode else steering.label())
            # the base samples are the reference of every win rate (greedy alone needs none)
            base_first: dict[Any, float] = {}
            greedy_answers: dict[Any, str] = {}
            bon_curve: list[dict[str, Any]] = []
            if set(methods) != {"greedy"} or budgets:
                prog.stage(f"base policy: {N} samples per prompt", len(examples))
                t0 = time.monotonic()
                res = await policy.asearch(
                    examples,
                    policy.search_params(n=N, final="grader"),
                    method="best_of_n",
                    grader=grader,
                    on_result=lambda r: prog.advance(1, tokens=r.usage.completion_tokens),
                )
                secs = time.monotonic() - t0
                n_run = cfg.search.n  # base and Best-of-N rows at the run's N = W*K
                all_rewards = {r.example.id: [c.reward for c in r.candidates] for r in res}
                all_tokens = {
                    r.example.id: [c.completion_tokens for c in r.candidates] for r in res
                }
                base = metrics.base_metrics(
                    {k: v[:n_run] for k, v in all_rewards.items()},
                    {k: v[:n_run] for k, v in all_tokens.items()},
                    n_run,
                )
                bon_curve = metrics.bon_curve(all_rewards, all_tokens)
                base_first = {
                    r.example.id: metrics.reward_or_zero(r.candidates[0].reward) for r in res
                }
                per_prompt = [sum(v[:n_run]) for v in all_tokens.values()]
                if "base" in methods:
                    rows["base"] = {
                        "mean_reward": base["eval_mean_reward"],
                        "stderr": base["eval_reward_stderr"],
                        "tokens_per_prompt": base["base_tokens_per_prompt"],
                        "win_rate_vs_base": 0.5,
                        "seconds": secs / len(res[0].candidates) if res else 0.0,
                    }
                if "bon" in methods:
                    best = {
                        k: max(metrics.reward_or_zero(x) for x in v[:n_run])
                        for k, v in all_rewards.items()
                    }
                    rows["bon"] = {
                        "mean_reward": base["bon_mean_reward"],
                        "stderr": metrics.stderr(list(best.values())),
                        "tokens_per_prompt": metrics.mean(per_prompt),
                        "win_rate_vs_base": metrics.win_rate(best, base_first),
                        "seconds": secs,
                        "n": n_run,
                    }
            if "greedy" in methods:
                prog.stage("greedy: the base policy at temperature 0", len(examples))
                t0 = time.monotonic()
                res = await policy.asearch(
                    examples,
                    policy.search_params(n=1, final="grader", temperature=0.0),
                    method="best_of_n",
                    grader=grader,
                    on_result=lambda r: prog.advance(1, tokens=r.usage.completion_tokens),
                )
                greedy = {r.example.id: metrics.reward_or_zero(r.candidates[0].reward) for r in res}
                rows["greedy"] = {
                    "mean_reward": metrics.mean(list(greedy.values())),
                    "stderr": metrics.stderr(list(greedy.values())),
                    "tokens_per_prompt": metrics.mean([r.usage.completion_tokens for r in res]),
                    "win_rate_vs_base": metrics.win_rate(greedy, base_first),
                    "seconds": time.monotonic() - t0,
                }
                greedy_answers = {r.example.id: r.candidates[0].text for r in res}
            for method, upto, how in (
                ("cbs", 1, cfg.search.policy),
                ("iro", None, cfg.search.policy),
                ("rerank", None, "rerank"),
            ):
                if method not in methods:
                    continue
                k = len(policy.value_models) if upto is None else upto
                used = ", ".join(f"V_{t}" for t in policy.used(upto)) or "no value model"
                prog.stage(f"{method}: {how} with {used} (of V_1..V_{k})", len(examples))
                t0 = time.monotonic()
                res = await policy.asearch(
                    examples,
                    policy.search_params(final="grader"),
                    method=how,
                    upto=upto,
                    grader=grader,
                    on_result=lambda r: prog.advance(1, tokens=r.usage.completion_tokens),
                )
                secs = time.monotonic() - t0
                answers = {}
                for r in res:
                    pick = value_pick(
                        [c.text for c in r.candidates], [c.score for c in r.candidates]
                    )
                    answers[r.example.id] = metrics.reward_or_zero(r.candidates[pick].reward)
                m = metrics.policy_metrics(
                    answers,
                    grader_picks={r.example.id: metrics.reward_or_zero(r.best.reward) for r in res},
                    previous={},
                    base_first=base_first,
                    answers_per_prompt=[len(r.candidates) for r in res],
                    tokens_per_prompt=[r.usage.completion_tokens for r in res],
                )
                rows[method] = {
                    "mean_reward": m["eval_mean_reward"],
                    "stderr": m["eval_reward_stderr"],
                    "grader_pick_reward": m["eval_grader_reward"],
                    "answers_per_prompt": m["eval_answers_per_prompt"],
                    "win_rate_vs_base": m["win_rate_vs_base"],
                    "tokens_per_prompt": m["eval_tokens_per_prompt"],
                    "seconds": secs,
                    "value_models": k,
                    "used": [f"V_{t}" for t in policy.used(upto)],
                }
            curve = []
            for b in sorted(set(budgets or [])):
                w, k = budget_shape(b, cfg.search.k)
                prog.stage(f"iro at W*K = {w}*{k}", len(examples))
                res = await policy.asearch(
                    examples,
                    policy.search_params(final="grader", w=w, k=k),
                    grader=grader,
                    on_result=lambda r: prog.advance(1, tokens=r.usage.completion_tokens),
                )
                picks = {}
                for r in res:
                    pick = value_pick(
                        [c.text for c in r.candidates], [c.score for c in r.candidates]
                    )
                    picks[r.example.id] = metrics.reward_or_zero(r.candidates[pick].reward)
                curve.append(
                    {
                        "budget": b,
                        "w": w,
                        "k": k,
                        "reward": metrics.mean(list(picks.values())),
                        "stderr": metrics.stderr(list(picks.values())),
                        "tokens_per_prompt": metrics.mean([r.usage.completion_tokens for r in res]),
                    }
                )
    finally:
        spent = policy.provider.stats.snapshot()
        await policy.aclose()
    out: dict[str, Any] = {
        "run": policy.name,
        "data": data_name,
        "prompts": len(examples),
        "n": cfg.search.n,
        "w": cfg.search.w,
        "k": cfg.search.k,
        "l": cfg.search.l,
        "max_tokens": cfg.search.max_tokens,
        "policy": cfg.search.policy,
        "methods": rows,
        "bon_curve": bon_curve,
        "iro_budgets": curve,
        "spent": {k: spent.get(k, 0) for k in ("requests", "cache_hits", "cost_usd")},
    }
    if greedy_answers:  # the texts (the --json file has them; the terminal shows figures)
        out["greedy_answers"] = greedy_answers
    if steering is not None:  # every figure is of that model, never the run's own
        out["steered"] = {**steering.to_dict(), "label": steering.label(), "mode": mode}
    return out


def write_json(result: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(result, indent=2))
