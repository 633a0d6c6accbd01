"""`--policy rerank` on a finished run's own stored base samples: no new sampling.

    .venv/bin/python benchmarks/rerank_stored.py --run ifeval-v6 [--t 1] [--n 2,4,8,16]

For every held-out prompt, the run's t = 0 evaluation stored 16 graded base samples (what its
Best-of-n curve is drawn from). This picks, among the first n of them, the one the value models
V_1..V_t score highest (sum_t V_t / beta_t over those the gate let steer, as the search and
`--policy rerank` do) and prints its mean reward with the standard error over prompts, beside
the run's pi_t on the same prompts and Best-of-n by the grader on the same samples, as JSON.
Same samples, same N: a paired comparison of reranking whole answers against the guided search,
at no sampling cost.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from iro_blackbox.iro.config import AlignConfig  # noqa: E402
from iro_blackbox.iro.value_checks import gate_passed  # noqa: E402
from iro_blackbox.search.common import value_pick  # noqa: E402
from iro_blackbox.store import RunRepository, open_store  # noqa: E402
from iro_blackbox.value import load_saved  # noqa: E402
from iro_blackbox.value.combine import weighted_scores  # noqa: E402


def _pick(rows: list) -> object:
    """The row the value models answer with (search/common.py value_pick: non-empty first)."""
    return rows[value_pick([r.response for r, _ in rows], [s for _, s in rows])][0]


def mean_se(xs: list[float]) -> tuple[float, float]:
    m = statistics.mean(xs)
    return m, (statistics.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a finished run")
    ap.add_argument("--db", default=None, help="its store (default: iro-runs/iro.db)")
    ap.add_argument(
        "--t",
        type=int,
        default=None,
        help="use V_1..V_t, those the gate let through (default: all trained)",
    )
    ap.add_argument("--n", default="2,4,8,16", help="numbers of samples to rerank")
    args = ap.parse_args()

    repo = RunRepository(open_store(args.db))
    run = repo.find(args.run)
    cfg = AlignConfig.from_dict(dict(run.config))
    records = repo.value_models(run.id, upto=args.t)
    if not records:
        sys.exit(f"run {run.name}: no value models")
    t = records[-1].t
    betas = cfg.search.betas(t)
    # the value models pi_t steers with: those the gate rejected are left out, as in the search
    used = [r for r in records if gate_passed(cfg, r.metrics)]
    models = [load_saved(r.path, device="cpu") for r in used]
    betas = [betas[r.t - 1] for r in used]
    by_ex: dict[int, list] = {}
    for r in repo.rollouts(run.id, 0, "eval", "best_of_n"):
        if r.reward is not None and r.grade_error is None:
            by_ex.setdefault(r.example_id, []).append(r)
    prompts = [r.prompt for rs in by_ex.values() for r in rs]
    answers = [r.response for rs in by_ex.values() for r in rs]
    score = weighted_scores(models, [1 / b for b in betas], prompts, answers)
    at, scored = 0, {}
    for ex, rs in by_ex.items():
        scored[ex] = list(zip(rs, score[at : at + len(rs)], strict=True))
        at += len(rs)
    pi_rows: dict[int, list] = {}
    for r in repo.rollouts(run.id, t, "eval", cfg.search.policy):
        pi_rows.setdefault(r.example_id, []).append(r)
    pi_t = {  # the answer the search gives without the grader (its value pick)
        ex: float(rs[value_pick([r.response for r in rs], [r.score for r in rs])].reward or 0.0)
        for ex, rs in pi_rows.items()
    }
    out = {
        "run": run.name,
        "value_models": t,
        "used": [f"V_{r.t}" for r in used],
        "prompts": len(by_ex),
        "rerank": [],
    }
    for n in [int(x) for x in args.n.split(",")]:
        pick = [_pick(rows[:n]).reward for rows in scored.values()]
        bon = [max(float(r.reward) for r, _ in rows[:n]) for rows in scored.values()]
        first = [float(rows[0][0].reward) for rows in scored.values()]
        m, se = mean_se([float(x) for x in pick])
        out["rerank"].append({"n": n, "reward": round(m, 4), "se": round(se, 4),
                              "best_of_n_grader": round(statistics.mean(bon), 4),
                              "one_sample": round(statistics.mean(first), 4)})  # fmt: skip
    if pi_t:
        common = [ex for ex in by_ex if ex in pi_t]
        m, se = mean_se([pi_t[ex] for ex in common])
        out["pi_t"] = {"t": t, "reward": round(m, 4), "se": round(se, 4), "prompts": len(common)}
        n16 = [_pick(scored[ex][:16]).reward for ex in common]
        diff = [pi_t[ex] - float(x) for ex, x in zip(common, n16, strict=True)]
        d, dse = mean_se(diff)
        out["pi_t_minus_rerank_16"] = {"gain": round(d, 4), "se": round(dse, 4)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
