"""Which candidates survive a beam-search step.

Each rule takes the candidates' texts (the whole response so far) and scores, and returns the
indices of the m kept, best first. Ties keep the earlier candidate. `taken` holds texts already
held by beams that are not competing (finished beams): the diversity rules treat them as seen.

- topw:    the m highest scores.
- diverse: drop duplicate texts (and texts in `taken`), take the m best of the rest, then pad
           with the best duplicates when fewer than m are unique (the published default).
- softmax: sample m unique texts without replacement with probability ∝ exp(score / temperature)
           (Gumbel top-k: the same as drawing one by one and removing each drawn), padded like
           diverse; temperature 0 is the m best unique texts.
- lineage: every parent keeps its best successor (`parents[i]`: candidate i's beam), so the W
           beams stay W chains that part where they started; with no parents given (the first
           step, when every beam is the empty response) it is diverse. Tried because diverse
           often spends every beam on one first chunk; on IFEval it scored 0.05 below diverse
           (README), so diverse stays the default.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Sequence

from ..errors import ConfigError


def _by_score(scores: Sequence[float]) -> list[int]:
    # stable: equal scores keep their order
    return sorted(range(len(scores)), key=lambda i: -scores[i])


def _unique_first(texts: Sequence[str], order: list[int], taken: Collection[str]) -> list[int]:
    """Indices in `order` whose text was not seen before (nor is in `taken`)."""
    seen = set(taken)
    out = []
    for i in order:
        if texts[i] not in seen:
            seen.add(texts[i])
            out.append(i)
    return out


def _pad(chosen: list[int], order: list[int], m: int) -> list[int]:
    """Fill up to m with the best not-yet-chosen candidates of `order`."""
    if len(chosen) >= m:
        return chosen[:m]
    have = set(chosen)
    for i in order:
        if len(chosen) >= m:
            break
        if i not in have:
            chosen.append(i)
            have.add(i)
    return chosen


def select_topw(texts: Sequence[str], scores: Sequence[float], m: int) -> list[int]:
    return _by_score(scores)[:m]


def select_diverse(
    texts: Sequence[str], scores: Sequence[float], m: int, taken: Collection[str] = ()
) -> list[int]:
    order = _by_score(scores)
    return _pad(_unique_first(texts, order, taken)[:m], order, m)


def select_softmax(
    texts: Sequence[str],
    scores: Sequence[float],
    m: int,
    temperature: float,
    rng: random.Random,
    taken: Collection[str] = (),
) -> list[int]:
    order = _by_score(scores)
    unique = _unique_first(texts, order, taken)  # best copy of each text
    if temperature == 0:
        picked = unique[:m]
    else:
        # Gumbel top-k: argsort of s/T + Gumbel noise samples without replacement ∝ exp(s/T)
        keys = {}
        for i in unique:
            u = rng.random()
            while u <= 0.0:
                u = rng.random()
            keys[i] = scores[i] / temperature - math.log(-math.log(u))
        picked = sorted(unique, key=lambda i: -keys[i])[:m]
    return _pad(picked, order, m)


def select_lineage(
    texts: Sequence[str], scores: Sequence[float], parents: Sequence[int]
) -> list[int]:
    """The best successor of every parent (ties: the first; a text another parent's chosen
    successor already holds only when the parent has nothing else), in parents' first order."""
    best: dict[int, list[int]] = {}
    for i in _by_score(scores):
        best.setdefault(parents[i], []).append(i)
    chosen: list[int] = []
    seen: set[str] = set()
    for parent in dict.fromkeys(parents):
        order = best[parent]
        pick = next((i for i in order if texts[i] not in seen), order[0])
        seen.add(texts[pick])
        chosen.append(pick)
    return chosen


def select(
    rule: str,
    texts: Sequence[str],
    scores: Sequence[float],
    m: int,
    *,
    temperature: float = 1.0,
    rng: random.Random | None = None,
    taken: Collection[str] = (),
    parents: Sequence[int] | None = None,
) -> list[int]:
    """Indices of the m candidates kept by `rule` (all of them when there are at most m).
    `parents` (lineage): the beam each candidate extends, one of m distinct beams."""
    if len(texts) != len(scores):
        raise ValueError(f"{len(texts)} texts but {len(scores)} scores")
    m = min(m, len(texts))
    if m <= 0:
        return []
    if rule == "topw":
        return select_topw(texts, scores, m)
    if rule == "diverse":
        return select_diverse(texts, scores, m, taken)
    if rule == "softmax":
        return select_softmax(texts, scores, m, temperature, rng or random.Random(0), taken)
    if rule == "lineage":
        if parents is None:
            return select_diverse(texts, scores, m, taken)
        if len(parents) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(parents)} parents")
        return select_lineage(texts, scores, parents)
    raise ConfigError(f"selection must be one of topw, diverse, softmax, lineage, got {rule!r}")
