"""Scorers: the value the search steers by, S(x, prefix) = sum_t V_t(x, prefix) / beta_t.

After T iterations the IRO policy is pi_T ∝ pi_base exp(sum_t V_t/beta_t), so one scorer combines
all value models trained so far. A scorer with no models gives S = 0 everywhere: chunk-level beam
search then keeps random beams (ties are broken by sampling order, or by the diversity rule),
which is plain sampling spent on W*K chunks per step: a baseline, not an error.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError
from ..value.combine import weighted_scores


@runtime_checkable
class ValueModelLike(Protocol):
    """What CombinedScorer needs of a value model (iro_blackbox.value.ValueModel has it)."""

    def score(self, prompts: list[str], partials: list[str]) -> list[float]: ...


@runtime_checkable
class Scorer(Protocol):
    """Scores (prompt text, partial response) pairs; higher is better."""

    async def score(self, prompts: list[str], partials: list[str]) -> list[float]: ...


class CombinedScorer:
    """S = sum_t V_t(prompt, partial) / beta_t over any list of value models (betas default 1).

    The value models' `score` is synchronous and CPU-heavy: it runs in a worker thread, one model
    after another and one batch at a time (a lock: they share the cores anyway).
    """

    def __init__(self, models: Sequence[ValueModelLike] = (), betas: Sequence[float] | None = None):
        self.models = list(models)
        if betas is None:
            betas = [1.0] * len(self.models)
        betas = list(betas)
        if len(betas) != len(self.models):
            raise ConfigError(
                f"betas must give one value per value model: {len(self.models)} model(s), "
                f"got {len(betas)} beta(s)"
            )
        for i, b in enumerate(betas):
            if isinstance(b, bool) or not isinstance(b, (int, float)) or not b > 0 or b == math.inf:
                raise ConfigError(f"betas[{i}] must be a number > 0, got {b!r}")
        for i, m in enumerate(self.models):
            if not callable(getattr(m, "score", None)):
                raise ConfigError(f"models[{i}] has no score(prompts, partials) method")
        self.betas = [float(b) for b in betas]
        self._lock = threading.Lock()

    @property
    def empty(self) -> bool:
        return not self.models

    def __len__(self) -> int:
        return len(self.models)

    async def score(self, prompts: list[str], partials: list[str]) -> list[float]:
        if len(prompts) != len(partials):
            raise ValueError(f"{len(prompts)} prompts but {len(partials)} partials")
        if not prompts or not self.models:
            return [0.0] * len(prompts)
        return await asyncio.to_thread(self._run, list(prompts), list(partials), None)

    def score_cuts(
        self, prompts: Sequence[str], answers: Sequence[str], cuts: Sequence[int]
    ) -> list[float]:
        """S of answers[i][:cuts[i]], synchronously (the gate, benchmarks): models with
        score_cuts read every prefix of an answer from one pass."""
        return self._run(list(prompts), list(answers), list(cuts))

    def _run(self, prompts: list[str], texts: list[str], cuts: list[int] | None) -> list[float]:
        with self._lock:
            return weighted_scores(self.models, [1 / b for b in self.betas], prompts, texts, cuts)

    def describe(self) -> dict[str, Any]:
        return {
            "models": [getattr(m, "name", None) or type(m).__name__ for m in self.models],
            "betas": list(self.betas),
        }


def as_scorer(scorer: Any) -> Scorer:
    """None -> the empty scorer (S = 0); a list of value models -> CombinedScorer; a scorer as is."""
    if scorer is None:
        return CombinedScorer()
    if isinstance(scorer, (list, tuple)):
        return CombinedScorer(scorer)
    if not callable(getattr(scorer, "score", None)) or not asyncio.iscoroutinefunction(
        scorer.score
    ):
        raise ConfigError(
            "scorer must have an async score(prompts, partials) method "
            "(wrap value models in CombinedScorer)"
        )
    return scorer


def is_empty(scorer: Scorer) -> bool:
    """True when the scorer gives 0 everywhere (no value models): no need to call it."""
    return bool(getattr(scorer, "empty", False))
