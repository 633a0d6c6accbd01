"""A weighted sum of value models' scores: sum_i w_i V_i(prompt, answer[:cut]).

The one place that adds value models up outside the search (the gate, the lab's ensembles, the
benchmarks); the search's CombinedScorer calls it too. A model with `score_cuts` (the two-tower
model) reads every prefix of an answer from one pass over the whole answer; any other model
scores each prefix as text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import IroError


def weighted_scores(
    models: Sequence[Any],
    weights: Sequence[float],
    prompts: Sequence[str],
    answers: Sequence[str],
    cuts: Sequence[int] | None = None,
) -> list[float]:
    """sum_i weights[i] * V_i(prompts[j], answers[j][:cuts[j]]) for every j (cuts=None: the whole
    answers). Raises IroError when a model returns the wrong number of scores or a non-finite one."""
    if len(models) != len(weights):
        raise ValueError(f"{len(models)} value models but {len(weights)} weights")
    if len(prompts) != len(answers) or (cuts is not None and len(cuts) != len(answers)):
        raise ValueError("prompts, answers and cuts must have one entry each per prefix")
    total = [0.0] * len(prompts)
    if not prompts:
        return total
    partials = (
        list(answers) if cuts is None else [a[:c] for a, c in zip(answers, cuts, strict=True)]
    )
    for t, (model, w) in enumerate(zip(models, weights, strict=True)):
        if cuts is not None and hasattr(model, "score_cuts"):
            values = list(model.score_cuts(list(prompts), list(answers), list(cuts)))
        else:
            values = list(model.score(list(prompts), partials))
        if len(values) != len(prompts):
            raise IroError(
                f"value model {t} returned {len(values)} scores for {len(prompts)} prefixes"
            )
        for i, v in enumerate(values):
            v = float(v)
            if not math.isfinite(v):
                raise IroError(f"value model {t} returned a non-finite score ({v})")
            total[i] += w * v
    return total


class WeightedValue:
    """sum_i w_i V_i as one synchronous value model (score, score_cuts): what rank_examples and
    the benchmarks take. The tokenizer is the first model's (it cuts the prefixes)."""

    def __init__(self, models: Sequence[Any], weights: Sequence[float]):
        if not models:
            raise ValueError("WeightedValue needs at least one value model")
        self.models, self.weights = list(models), [float(w) for w in weights]
        self.tokenizer = getattr(self.models[0], "tokenizer", None)

    def score(self, prompts: Sequence[str], partials: Sequence[str]) -> list[float]:
        return weighted_scores(self.models, self.weights, prompts, partials)

    def score_cuts(
        self, prompts: Sequence[str], answers: Sequence[str], cuts: Sequence[int]
    ) -> list[float]:
        return weighted_scores(self.models, self.weights, prompts, answers, cuts)
