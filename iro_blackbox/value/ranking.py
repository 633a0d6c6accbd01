"""What the search needs from a value model: to rank prefixes of the same prompt at the same step.

    groups = pair_groups(examples)                     # one id per (prompt, position)
    centered = centered_targets(examples)              # reward minus its prompt's mean reward
    m = ranking_metrics(pred, target, groups, positions)
    m["accuracy"], m["kendall_tau"], m["by_position"]

The search only ever compares the K successors of the same beams (same prompt, same length), so
a value model is judged by within-group pair order: `accuracy` is the share of pairs with
different rewards whose predicted order is right (a predicted tie counts half; 0.5 is chance),
`kendall_tau` the mean Kendall tau-b over groups with at least one such pair. `pairwise_loss` is
the Bradley-Terry objective over the same pairs, each weighted by its reward gap.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch

CHANCE_MARGIN = 0.05  # a value model within this of 0.5 accuracy "ranks barely above chance"


def pair_groups(examples: Sequence[Any]) -> list[int]:
    """A group id per example: examples of one prompt at one position share it; an example of
    unknown position (-1) is a group of its own."""
    ids: dict[tuple[str, int], int] = {}
    out = []
    for i, e in enumerate(examples):
        if e.position < 0:
            out.append(-1 - i)
            continue
        out.append(ids.setdefault((e.prompt, e.position), len(ids)))
    return out


def centered_targets(examples: Sequence[Any]) -> list[float]:
    """Each target minus the (weighted) mean final reward of its prompt's rollouts (each rollout
    counted once, however many prefixes it has)."""
    per_prompt: dict[str, dict[int, tuple[float, float]]] = defaultdict(dict)
    for i, e in enumerate(examples):
        key = e.rollout if e.rollout >= 0 else -1 - i
        per_prompt[e.prompt][key] = (e.target, e.weight)
    means = {}
    for p, rolls in per_prompt.items():
        tw = sum(w for _, w in rolls.values())
        if tw <= 0:
            means[p] = sum(t for t, _ in rolls.values()) / len(rolls)
        else:
            means[p] = sum(t * w for t, w in rolls.values()) / tw
    return [e.target - means[e.prompt] for e in examples]


def _pairs(group: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(i, j) index pairs of one group with target_i > target_j; memory grows with the pairs
    found, not with the square of the rows (a relabelled run has 100,000 of them)."""
    if group.numel() == 0:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty
    order = torch.argsort(group, stable=True)
    _, counts = torch.unique_consecutive(group[order], return_counts=True)
    out_i, out_j = [], []
    for members in torch.split(order, counts.tolist()):
        if len(members) < 2:
            continue
        t = target[members]
        a, b = torch.nonzero(t.unsqueeze(1) > t.unsqueeze(0), as_tuple=True)
        out_i.append(members[a])
        out_j.append(members[b])
    if not out_i:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty
    return torch.cat(out_i), torch.cat(out_j)


def pairwise_loss(
    raw: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, group: torch.Tensor
) -> torch.Tensor | None:
    """Bradley-Terry: -log sigmoid(s_i - s_j) over same-group pairs with target_i > target_j,
    weighted by (target_i - target_j) * sqrt(w_i w_j); None when the batch has no pair."""
    i, j = _pairs(group, target)
    if i.numel() == 0:
        return None
    w = (target[i] - target[j]) * torch.sqrt(weight[i] * weight[j])
    if float(w.sum()) <= 0:
        return None
    per = torch.nn.functional.softplus(-(raw[i] - raw[j]))
    return (per * w).sum() / w.sum()


def _tau_b(pred: list[float], target: list[float]) -> float | None:
    n = len(pred)
    conc = disc = ties_p = ties_t = 0
    for a in range(n):
        for b in range(a + 1, n):
            dp = pred[a] - pred[b]
            dt = target[a] - target[b]
            if dt == 0 and dp == 0:
                ties_p += 1
                ties_t += 1
            elif dt == 0:
                ties_t += 1
            elif dp == 0:
                ties_p += 1
            elif (dp > 0) == (dt > 0):
                conc += 1
            else:
                disc += 1
    n0 = n * (n - 1) / 2
    denom = math.sqrt((n0 - ties_p) * (n0 - ties_t))
    return (conc - disc) / denom if denom > 0 else None


def ranking_metrics(
    pred: Sequence[float],
    target: Sequence[float],
    groups: Sequence[int],
    positions: Sequence[int],
    inputs: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Within-group pair accuracy, mean Kendall tau-b and accuracy by position. `inputs`: the
    prefixes' texts; a pair of identical prefixes (the empty one, a shared start) cannot be
    ranked by any model and is left out."""
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    right = 0.0
    pairs = 0
    taus: list[float] = []
    by_pos: dict[int, list[float]] = defaultdict(lambda: [0.0, 0])
    for rows in members.values():
        if len(rows) < 2:
            continue
        pos = positions[rows[0]]
        got = 0
        for a_i, a in enumerate(rows):
            for b in rows[a_i + 1 :]:
                dt = target[a] - target[b]
                if dt == 0 or (inputs is not None and inputs[a] == inputs[b]):
                    continue
                dp = pred[a] - pred[b]
                score = 0.5 if dp == 0 else float((dp > 0) == (dt > 0))
                right += score
                pairs += 1
                got += 1
                by_pos[pos][0] += score
                by_pos[pos][1] += 1
        if got:
            if inputs is not None:  # one row per distinct prefix text
                rows = list({inputs[i]: i for i in rows}.values())
            tau = _tau_b([pred[i] for i in rows], [target[i] for i in rows])
            if tau is not None:
                taus.append(tau)
    return {
        "accuracy": right / pairs if pairs else None,
        "kendall_tau": sum(taus) / len(taus) if taus else None,
        "pairs": pairs,
        "groups": len(taus),
        "by_position": {
            int(p): {"accuracy": s / n, "pairs": int(n)} for p, (s, n) in sorted(by_pos.items())
        },
    }


def calibration(pred: Sequence[float], target: Sequence[float], bins: int = 10) -> list[dict]:
    """Reliability curve: examples sorted by prediction into equal-count bins; per bin the mean
    prediction and the mean actual target."""
    order = sorted(range(len(pred)), key=lambda i: pred[i])
    if not order:
        return []
    bins = max(1, min(bins, len(order)))
    out = []
    for b in range(bins):
        rows = order[b * len(order) // bins : (b + 1) * len(order) // bins]
        if rows:
            out.append(
                {
                    "pred": sum(pred[i] for i in rows) / len(rows),
                    "actual": sum(target[i] for i in rows) / len(rows),
                    "n": len(rows),
                }
            )
    return out


def barely_above_chance(accuracy: float | None) -> bool:
    return accuracy is not None and accuracy < 0.5 + CHANCE_MARGIN


def rank_examples(
    model: Any, examples: Sequence[Any], answers: Sequence[str] | None = None
) -> dict[str, Any]:
    """ranking_metrics of `model`'s scores of ValueExamples. `answers`: each example's whole
    answer by its `rollout` index, so a model with score_cuts reads every prefix of an answer
    from one pass over it; without them (or without score_cuts) each prefix is scored as text."""
    if answers is not None and hasattr(model, "score_cuts"):
        pred = model.score_cuts(
            [e.prompt for e in examples],
            [answers[e.rollout] for e in examples],
            [len(e.partial) for e in examples],
        )
    else:
        pred = model.score([e.prompt for e in examples], [e.partial for e in examples])
    return ranking_metrics(
        pred,
        [e.target for e in examples],
        pair_groups(examples),
        [e.position for e in examples],
        [e.partial for e in examples],
    )


def heldout_ranking(model: Any, rollouts: Sequence[Any], config: Any) -> dict[str, Any]:
    """Rank graded answers of held-out prompts with `model`: every prefix cut as for training
    (config: a ValueTrainConfig), scored, and compared within (prompt, position) groups."""
    from .data import make_value_examples

    examples = make_value_examples(rollouts, config, tokenizer=model.tokenizer)
    if not examples:
        return {}
    m = rank_examples(model, examples, [r.response for r in rollouts])
    m["prompts"] = len({e.prompt for e in examples})
    m["answers"] = len(rollouts)
    return m
