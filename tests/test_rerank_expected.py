"""rerank_expected.py's exact expectations against brute force over every n-subset."""

from __future__ import annotations

import itertools
import random
import sys
from math import comb
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from rerank_expected import expected_best, expected_pick  # noqa: E402

from iro_blackbox.search.common import value_pick  # noqa: E402


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_expectations_match_every_subset(seed: int, n: int) -> None:
    rng = random.Random(seed)
    m = 7
    items = [
        ("" if rng.random() < 0.25 else f"answer {i}", rng.gauss(0, 1), rng.choice([0, 0.5, 1]))
        for i in range(m)
    ]
    picks, bests = [], []
    for sub in itertools.combinations(items, n):
        i = value_pick([t for t, _, _ in sub], [s for _, s, _ in sub])
        picks.append(sub[i][2])
        bests.append(max(r for _, _, r in sub))
    assert len(picks) == comb(m, n)
    assert expected_pick(items, n) == pytest.approx(sum(picks) / len(picks))
    assert expected_best([r for _, _, r in items], n) == pytest.approx(sum(bests) / len(bests))
