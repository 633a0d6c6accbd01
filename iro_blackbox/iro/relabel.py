"""Grader relabelling: more value-model training data from the rollouts already paid for.

Every answer sampled for one prompt is also graded as an answer to `k` other training prompts
(seeded draw). The grader says how well answer j follows prompt i, so the value model sees, for
the same answer text, prompts it satisfies and prompts it does not: the interaction between the
instruction and the answer, which a few hundred same-prompt samples rarely isolate. No new
sampling; only grading, which a local grader does in milliseconds.

    extra = await relabel(rollouts, items, grader, k=4, seed=0)

`rollouts`: RolloutData with prompts as the value model reads them; `items`: the dataset record
of each prompt (what graders read). Relabelled rollouts carry `weight` (default 1, like the
originals) and `source`, the prompt the answer was sampled for (value/data.py's split keeps an
answer held out for validation out of training in every copy). Answers whose grade failed are
left out.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from ..graders import Grader
from ..value import RolloutData


def relabel_pairs(
    rollouts: Sequence[RolloutData], k: int, seed: int
) -> list[tuple[str, RolloutData]]:
    """(other prompt, original rollout) pairs: each rollout's answer paired with k prompts other
    than its own, drawn without replacement (fewer when there are fewer other prompts)."""
    prompts = sorted({r.prompt for r in rollouts})
    rng = random.Random(seed)
    out = []
    for r in rollouts:
        others = [p for p in prompts if p != r.prompt]
        for p in rng.sample(others, min(k, len(others))):
            out.append((p, r))
    return out


async def relabel(
    rollouts: Sequence[RolloutData],
    items: Mapping[str, dict[str, Any]],
    grader: Grader,
    *,
    k: int,
    seed: int = 0,
    weight: float = 1.0,
    batch: int = 256,
) -> list[RolloutData]:
    """Each answer graded against k other prompts: new (prompt, answer, reward, weight) rows."""
    if k <= 0:
        return []
    pairs = relabel_pairs(rollouts, k, seed)
    out: list[RolloutData] = []
    for i in range(0, len(pairs), batch):
        part = pairs[i : i + batch]
        grades = await grader.grade([r.response for _, r in part], [items[p] for p, _ in part])
        for (p, r), g in zip(part, grades, strict=True):
            if g.error is None:
                out.append(RolloutData(p, r.response, float(g.score), weight, r.source or r.prompt))
    return out
