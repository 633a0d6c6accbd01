"""The gate: V_t steers only when it is checked to help, on training prompts it never fit.

    check = gate_check(previous, betas, v_t, beta_t, rollouts, tcfg)
    check["accepted"], check["reason"]

Where: the validation slice of V_t's own training data (whole prompts, never the held-out ones;
value/train.py's split_examples, the same seeded split the trainer used, so V_t never fit them).
What: the search keeps the prefixes with the highest S = sum_s V_s / beta_s among the
successors of one prompt at one step, so the check is how S ranks same-prompt, same-position
prefixes of those rollouts by their final reward, with V_t added against without it:
- no earlier value model in use: S = V_1 / beta_1 against chance (0.5, a search with no value
  model picks at random);
- earlier ones in use: S with V_t / beta_t added against S without it;
accepted when the pair accuracy gained exceeds GATE_Z standard errors, computed with prompts as
clusters (the pairs of one prompt are not independent); with fewer than MIN_GATE_PROMPTS
validation prompts there is no usable standard error and a positive gain is enough. Too few pairs to tell (fewer than MIN_GATE_PAIRS) is accepted and said so. A rejected V_t is
kept on disk and in the report but never steers (its beta is infinite): pi_t = pi_{t-1}.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from ..value import RolloutData, make_value_examples
from ..value.combine import weighted_scores
from ..value.data import as_rollout

GATE_Z = 1.64  # one-sided, about 95%: the gain must exceed this many standard errors
MIN_GATE_PAIRS = 50  # fewer pairs than this decide nothing
MIN_GATE_PROMPTS = 5  # fewer validation prompts than this give no usable standard error


def validation_rollouts(
    rollouts: Sequence[RolloutData], tcfg: Any, tokenizer: Any
) -> list[RolloutData]:
    """The rollouts the trainer held out for validation (the same seeded split it used)."""
    from ..value.data import split_examples

    examples = make_value_examples(rollouts, tcfg, tokenizer=tokenizer)
    _, val, _ = split_examples(examples, tcfg)
    keep = sorted({examples[i].rollout for i in val})
    return [rollouts[i] for i in keep]


def _combined(
    models: Sequence[Any],
    betas: Sequence[float],
    examples: list[Any],
    rollouts: Sequence[RolloutData],
) -> list[float]:
    """sum_i V_i / beta_i of every example's prefix (one pass per answer where a model can)."""
    return weighted_scores(
        models,
        [1 / b for b in betas],
        [e.prompt for e in examples],
        [as_rollout(rollouts[e.rollout]).response for e in examples],
        [len(e.partial) for e in examples],
    )


def pair_scores(examples: Sequence[Any], pred: Sequence[float]) -> dict[str, list[float]]:
    """Per prompt, one score per rankable pair (same position, different rewards, different
    texts): 1 ordered right, 0 wrong, 0.5 a predicted tie; pairs in a fixed order."""
    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    for i, e in enumerate(examples):
        if e.position >= 0:
            groups[(e.prompt, e.position)].append(i)
    out: dict[str, list[float]] = defaultdict(list)
    for (prompt, _), rows in sorted(groups.items()):
        for a_i, a in enumerate(rows):
            for b in rows[a_i + 1 :]:
                ea, eb = examples[a], examples[b]
                dt = ea.target - eb.target
                if dt == 0 or ea.partial == eb.partial:
                    continue
                dp = pred[a] - pred[b]
                out[prompt].append(0.5 if dp == 0 else float((dp > 0) == (dt > 0)))
    return out


def clustered_mean(per_prompt: dict[str, list[float]]) -> tuple[float | None, float, int]:
    """Mean over all pairs and its standard error with prompts as clusters (pairs of one prompt
    are not independent); (None, 0, 0) without pairs."""
    sums = [sum(v) for v in per_prompt.values() if v]
    counts = [len(v) for v in per_prompt.values() if v]
    n, total = len(counts), sum(counts)
    if total == 0:
        return None, 0.0, 0
    mean = sum(sums) / total
    if n < 2:
        return mean, float("inf"), total
    var = n / (n - 1) * sum((s - mean * c) ** 2 for s, c in zip(sums, counts, strict=True))
    return mean, math.sqrt(var) / total, total


def gate_check(
    previous: Sequence[Any],
    betas: Sequence[float],
    model: Any,
    beta: float,
    rollouts: Sequence[RolloutData],
    tcfg: Any,
) -> dict[str, Any]:
    """Accept or reject V_t (see the module doc). `previous`/`betas`: the value models in use."""
    examples = make_value_examples(rollouts, tcfg, tokenizer=model.tokenizer)
    mine = _combined([model], [beta], examples, rollouts)
    before = _combined(previous, betas, examples, rollouts) if previous else None
    after = mine if before is None else [a + b for a, b in zip(before, mine, strict=True)]
    with_v = pair_scores(examples, after)
    if before is None:  # against chance: the search without any value model picks at random
        without = {p: [0.5] * len(v) for p, v in with_v.items()}
    else:
        without = pair_scores(examples, before)
    acc_with, _, pairs = clustered_mean(with_v)
    acc_without, _, _ = clustered_mean(without)
    gain, se, _ = clustered_mean(
        {p: [a - b for a, b in zip(with_v[p], without[p], strict=True)] for p in with_v}
    )
    out: dict[str, Any] = {
        "prompts": len({r.prompt for r in rollouts}),
        "pairs": pairs,
        "accuracy_with": acc_with,
        "accuracy_without": acc_without,
        "gain": gain,
        "gain_se": se if math.isfinite(se) else None,
    }
    if gain is None or pairs < MIN_GATE_PAIRS:
        out.update(accepted=True, reason=f"too few validation pairs to check ({pairs})")
        return out
    what = "V_t alone" if before is None else "the search's score with V_t"
    base = "chance (0.500)" if before is None else f"{acc_without:.3f} without it"
    head = (
        f"{what} ranks {pairs} validation pairs of {out['prompts']} training prompts at "
        f"{acc_with:.3f} against {base}: gain {gain:+.3f}"
    )
    if out["prompts"] < MIN_GATE_PROMPTS:  # a clustered standard error needs clusters
        ok = gain > 0
        why = f"{'positive' if ok else 'not positive'}; too few prompts for a standard error"
    else:
        ok = gain > GATE_Z * se
        why = f"± {se:.3f}, {'more' if ok else 'not more'} than {GATE_Z} standard errors"
    out.update(accepted=ok, reason=f"{head} ({why})")
    return out
