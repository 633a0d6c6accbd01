"""IRO step 2, reweight: which graded candidates of a prompt the next value model learns from.

- "best" (the published recipe): the best candidate is kept (weight 1), the others get weight 0;
- "resample": every candidate weighted ∝ exp(r / tau), scaled so the weights sum to the number of
  candidates (the best one is still marked as selected).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def reweight(rewards: Sequence[float], mode: str, tau: float) -> tuple[int, list[float]]:
    """(index of the best candidate, one weight per candidate); ties keep the first."""
    best = max(range(len(rewards)), key=lambda i: rewards[i])
    if mode == "best":
        return best, [1.0 if i == best else 0.0 for i in range(len(rewards))]
    top = max(rewards)
    ex = [math.exp((x - top) / tau) for x in rewards]
    z = sum(ex)
    return best, [e / z * len(rewards) for e in ex]
