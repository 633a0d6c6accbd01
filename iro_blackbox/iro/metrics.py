"""What a policy scored on held-out prompts, computed the same way by `align` and `iro-bb eval`.

Pure functions over rewards keyed by prompt (no store, no search objects):

- base_metrics: the base policy's N samples per prompt: mean reward, Best-of-N (the grader's pick
  among the N), the Best-of-n curve for n = 1, 2, 4, ... N against tokens (equal compute);
- policy_metrics: pi_t's own answers (chosen by the value models, no grader), the grader's pick
  among its complete answers, the gain over pi_{t-1} paired by prompt, the win rate against the
  base policy's first sample;
- summary: the run's headline figures from its iterations;
- provider_delta: requests, cache hits and cost between two snapshots of a provider's stats.

Standard errors are over prompts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from ..utils import mean_stderr

K = TypeVar("K")
BASE_T = 0  # iteration index of the base-policy evaluation


def mean(xs: Sequence[float | None]) -> float | None:
    """Mean of the values that are not None (None when there are none)."""
    vals = [float(x) for x in xs if x is not None]
    return sum(vals) / len(vals) if vals else None


def stderr(xs: Sequence[float | None]) -> float | None:
    """Standard error of the mean of the values that are not None."""
    return mean_stderr([float(x) for x in xs if x is not None])[1]


def reward_or_zero(x: float | None) -> float:
    """A missing reward (ungraded) counts as 0 where one value per answer is needed."""
    return float(x) if x is not None else 0.0


def win_rate(answers: Mapping[K, float], base: Mapping[K, float]) -> float | None:
    """Share of prompts where the answer beats the base answer (ties count half)."""
    wins = [
        1.0 if a > base[k] else 0.5 if a == base[k] else 0.0
        for k, a in answers.items()
        if k in base
    ]
    return mean(wins)


def bon_curve(
    rewards: Mapping[K, Sequence[float | None]], tokens: Mapping[K, Sequence[int]]
) -> list[dict[str, float | None]]:
    """Best-of-n for n = 1, 2, 4, ... N from each prompt's first n samples: the mean of the best
    reward against the tokens those n samples cost (the equal-compute picture)."""
    if not rewards:
        return []
    N = min(len(rs) for rs in rewards.values())
    out, n = [], 1
    while n <= N:
        out.append(
            {
                "n": n,
                "reward": mean([max(reward_or_zero(r) for r in rs[:n]) for rs in rewards.values()]),
                "tokens_per_prompt": mean([sum(tokens[k][:n]) for k in rewards]),
            }
        )
        n *= 2
    return out


def base_metrics(
    rewards: Mapping[K, Sequence[float | None]],
    tokens: Mapping[K, Sequence[int]],
    n: int,
    grade_errors: int = 0,
) -> dict[str, Any]:
    """The base policy from its n samples per prompt (in sampling order)."""
    every = [r for rs in rewards.values() for r in rs]
    bon = mean([max(reward_or_zero(r) for r in rs) for rs in rewards.values()])
    return {
        "eval_mean_reward": mean(every),
        "eval_reward_stderr": stderr(
            [mean([reward_or_zero(r) for r in rs]) for rs in rewards.values()]
        ),
        "base_first_reward": mean([rs[0] for rs in rewards.values()]),
        "bon_mean_reward": bon,
        "eval_grader_reward": bon,  # Best-of-N is the grader's pick among the base samples
        "eval_answers_per_prompt": n,
        "bon_n": n,
        "bon_tokens_per_prompt": mean([sum(ts) for ts in tokens.values()]),
        "base_tokens_per_prompt": mean([t for ts in tokens.values() for t in ts]),
        "bon_curve": bon_curve(rewards, tokens),
        "grade_errors": grade_errors,
        "tokens": sum(t for ts in tokens.values() for t in ts),
    }


def policy_metrics(
    answers: Mapping[K, float],
    grader_picks: Mapping[K, float],
    previous: Mapping[K, float],
    base_first: Mapping[K, float],
    answers_per_prompt: Sequence[int],
    tokens_per_prompt: Sequence[int],
) -> dict[str, Any]:
    """pi_t on held-out prompts. answers: the reward of the policy's own answer per prompt;
    grader_picks: of the best of its answers by the grader; previous: pi_{t-1}'s per-prompt
    reward (t = 1: the base policy's mean); base_first: the base policy's first sample."""
    gains = [a - previous[k] for k, a in answers.items() if k in previous]
    return {
        "eval_mean_reward": mean(list(answers.values())),
        "eval_reward_stderr": stderr(list(answers.values())),
        "eval_gain": mean(gains),
        "eval_gain_stderr": stderr(gains),
        "eval_grader_reward": mean(list(grader_picks.values())),
        "eval_answers_per_prompt": mean(list(answers_per_prompt)),
        "win_rate_vs_base": win_rate(answers, base_first),
        "eval_tokens_per_prompt": mean(list(tokens_per_prompt)),
        "eval_prompts": len(answers),
    }


def summary(iterations: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The run's headline figures: base, Best-of-N, and the last finished pi_t."""
    base = next((i["metrics"] for i in iterations if i["t"] == BASE_T), {})
    done = [i for i in iterations if i["t"] > BASE_T and i["stage"] == "done"]
    out = {
        "base_mean_reward": base.get("eval_mean_reward"),
        "bon_mean_reward": base.get("bon_mean_reward"),
        "bon_n": base.get("bon_n"),
    }
    if done:
        m = done[-1]["metrics"]
        out.update(
            {
                "iterations": done[-1]["t"],
                "iro_mean_reward": m.get("eval_mean_reward"),
                "iro_grader_reward": m.get("eval_grader_reward"),
                "win_rate_vs_base": m.get("win_rate_vs_base"),
                "cbs_single_value_reward": done[0]["metrics"].get("eval_mean_reward"),
            }
        )
    return out


def provider_delta(before: Mapping[str, Any], now: Mapping[str, Any]) -> dict[str, Any]:
    """Requests, cache hits and cost between two snapshots of a provider's stats."""
    return {
        "requests": now.get("requests", 0) - before.get("requests", 0),
        "cache_hits": now.get("cache_hits", 0) - before.get("cache_hits", 0),
        "cost_usd": round(now.get("cost_usd", 0.0) - before.get("cost_usd", 0.0), 6),
    }
