"""`iro-bb eval`: the aligned policy against the baselines at equal compute (N = W*K samples).

Methods:
  base  the base policy: mean reward over N samples per prompt (its first sample is the reference
        for win rates)
  bon   Best-of-N by the grader over those N samples
  cbs   chunk-level beam search guided by V_1 alone (CBS with a single value model)
  iro   chunk-level beam search guided by V_1..V_T (the aligned policy)
cbs and iro answer by value score alone (no grader at decode time: what `iro-bb generate` returns);
"grader pick" is the best of their complete answers (about W*K) by the grader, as Best-of-N
picks the best of its N.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from .dataset import load_examples
from .errors import ConfigError
from .store import Store
from .utils import mean_stderr

METHODS = ("base", "bon", "cbs", "iro")


def evaluate(
    run: str | int,
    data: str | Path,
    *,
    methods: list[str] | tuple[str, ...] = METHODS,
    db: str | Store | None = None,
    progress: bool = True,
    limit: int | None = None,
) -> dict[str, Any]:
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ConfigError(f"unknown method(s) {', '.join(bad)}: choose from {', '.join(METHODS)}")
    examples = load_examples(data)
    if limit:
        examples = examples[:limit]
    return asyncio.run(_evaluate(run, examples, list(methods), db, progress, str(data)))


async def _evaluate(
    run: Any, examples: list, methods: list[str], db: Any, progress: bool, data_name: str
) -> dict[str, Any]:
    from .policy import load_run
    from .progress import RunProgress
    from .search import value_pick

    policy = load_run(run, db=db)
    grader = policy.grader
    cfg = policy.cfg
    N = cfg.w * cfg.k
    rows: dict[str, dict[str, Any]] = {}
    base_first: dict[str, float] = {}
    try:
        with RunProgress(progress, provider=policy.provider) as prog:
            if True:  # always: the base samples are the reference of every win rate
                prog.stage(f"base policy: {N} samples per prompt", len(examples))
                t0 = time.monotonic()
                params = policy.search_params(n=N, final="grader")
                res = await policy.asearch(
                    examples,
                    params,
                    method="best_of_n",
                    grader=grader,
                    on_result=lambda r: prog.advance(1, tokens=r.usage.completion_tokens),
                )
                secs = time.monotonic() - t0
                for r in res:
                    base_first[r.example.id] = float(r.candidates[0].reward or 0.0)
                samples = [float(c.reward or 0.0) for r in res for c in r.candidates]
                toks = [r.usage.completion_tokens for r in res]
                if "base" in methods:
                    m, se = mean_stderr(samples)
                    rows["base"] = {
                        "mean_reward": m,
                        "stderr": se,
                        "tokens_per_prompt": sum(toks) / len(toks) / N,
                        "win_rate_vs_base": 0.5,
                        "seconds": secs / N,
                    }
                if "bon" in methods:
                    best = [float(r.best.reward or 0.0) for r in res]
                    m, se = mean_stderr(best)
                    rows["bon"] = {
                        "mean_reward": m,
                        "stderr": se,
                        "tokens_per_prompt": sum(toks) / len(toks),
                        "win_rate_vs_base": _win(res, base_first),
                        "seconds": secs,
                        "n": N,
                    }
            for method, upto in (("cbs", 1), ("iro", None)):
                if method not in methods:
                    continue
                k = len(policy.value_models) if upto is None else upto
                prog.stage(f"{method}: guided search with V_1..V_{k}", len(examples))
                t0 = time.monotonic()
                params = policy.search_params(final="grader")
                res = await policy.asearch(
                    examples,
                    params,
                    method="cbs",
                    upto=upto,
                    grader=grader,
                    on_result=lambda r: prog.advance(1, tokens=r.usage.completion_tokens),
                )
                secs = time.monotonic() - t0
                graded = [float(r.best.reward or 0.0) for r in res]
                answers = [
                    r.candidates[
                        value_pick([c.text for c in r.candidates], [c.score for c in r.candidates])
                    ]
                    for r in res
                ]
                m, se = mean_stderr([float(c.reward or 0.0) for c in answers])
                rows[method] = {
                    "mean_reward": m,
                    "stderr": se,
                    "grader_pick_reward": mean_stderr(graded)[0],
                    "answers_per_prompt": sum(len(r.candidates) for r in res) / len(res),
                    "win_rate_vs_base": _win(res, base_first, answers),
                    "tokens_per_prompt": sum(r.usage.completion_tokens for r in res) / len(res),
                    "seconds": secs,
                    "value_models": k,
                }
    finally:
        await policy.aclose()
    return {
        "run": policy.name,
        "data": data_name,
        "prompts": len(examples),
        "n": N,
        "w": cfg.w,
        "k": cfg.k,
        "l": cfg.l,
        "max_tokens": cfg.max_tokens,
        "methods": rows,
    }


def _win(results: list, base_first: dict[str, float], answers: list | None = None) -> float | None:
    """Win rate of each result's answer (`answers[i]`, default its best) over the base sample."""
    wins = []
    for i, r in enumerate(results):
        if r.example.id in base_first:
            ans = answers[i] if answers is not None else r.best
            a, b = float(ans.reward or 0.0), base_first[r.example.id]
            wins.append(1.0 if a > b else 0.5 if a == b else 0.0)
    return sum(wins) / len(wins) if wins else None


def write_json(result: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(result, indent=2))
