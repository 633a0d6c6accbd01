"""`--policy rerank` on a finished run's own stored base samples: no new sampling.

    .venv/bin/python benchmarks/rerank_stored.py --run ifeval-v6 [--t 1] [--n 2,4,8,16]

For every held-out prompt, the run's t = 0 evaluation stored 16 graded base samples (what its
Best-of-n curve is drawn from). This picks, among the first n of them, the one the value models
V_1..V_t score highest (sum_t V_t / beta_t over those the gate let steer, as the search and
`--policy rerank` do) and prints its mean reward with the standard error over prompts, beside
the run's pi_t on the same prompts and Best-of-n by the grader on the same samples, as JSON.
Same samples, same N: a paired comparison of reranking whole answers against the guided search,
at no sampling cost.

`--prune-at L --keep 2,4,8` also simulates pruning early (Speculative Rejection's pattern): score
the first L tokens of all n samples by the value models, keep the best m, let only those finish
and answer with the best finished one by value. A stored sample's own continuation is a draw of
"finish this prefix", so the simulation needs no sampling; it spends n*L + (the kept answers'
remaining tokens) instead of every sample's whole length. Each m is printed beside reranking
fewer whole samples at no more tokens (paired, same prompts).
"""

from __future__ import annotations

import argparse
import itertools
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


def stored_scores(repo: RunRepository, name: str, upto: int | None) -> tuple:
    """(run, t, value-model records used, models, betas, {example_id: [(row, S), ...]}): the
    run's stored graded base samples of its held-out prompts, scored by the value models
    V_1..V_upto the gate let steer (S = sum_t V_t / beta_t)."""
    run = repo.find(name)
    cfg = AlignConfig.from_dict(dict(run.config))
    records = repo.value_models(run.id, upto=upto)
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
    return run, t, used, models, betas, scored


def stored_pi_t(repo: RunRepository, run, t: int) -> tuple[dict[int, list], dict[int, float]]:
    """({example_id: pi_t's stored answers}, {example_id: the reward of the answer the search
    gives without the grader, its value pick}) of the run's evaluation of pi_t."""
    cfg = AlignConfig.from_dict(dict(run.config))
    rows: dict[int, list] = {}
    for r in repo.rollouts(run.id, t, "eval", cfg.search.policy):
        rows.setdefault(r.example_id, []).append(r)
    picks = {
        ex: float(rs[value_pick([r.response for r in rs], [r.score for r in rs])].reward or 0.0)
        for ex, rs in rows.items()
    }
    return rows, picks


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
    ap.add_argument("--prune-at", type=int, default=0, help="simulate pruning after L tokens")
    ap.add_argument("--keep", default="2,4,8", help="answers kept to finish when pruning")
    ap.add_argument(
        "--prefix-mean",
        default="",
        help="also rerank by the mean of the value at these token cuts and the end (e.g. 16,32,48)",
    )
    ap.add_argument(
        "--siblings",
        action="store_true",
        help="pair accuracy of the search's stored scores among pi_t's answers, by how many "
        "chunks of L tokens a pair shares (siblings of the search share 1 or more)",
    )
    args = ap.parse_args()

    repo = RunRepository(open_store(args.db))
    run, t, used, models, betas, scored = stored_scores(repo, args.run, args.t)
    cfg = AlignConfig.from_dict(dict(run.config))
    pi_rows, pi_t = stored_pi_t(repo, run, t)
    out = {
        "run": run.name,
        "value_models": t,
        "used": [f"V_{r.t}" for r in used],
        "prompts": len(scored),
        "rerank": [],
    }
    for n in [int(x) for x in args.n.split(",")]:
        pick = [_pick(rows[:n]).reward for rows in scored.values()]
        bon = [max(float(r.reward) for r, _ in rows[:n]) for rows in scored.values()]
        first = [float(rows[0][0].reward) for rows in scored.values()]
        m, se = mean_se([float(x) for x in pick])
        out["rerank"].append({"n": n, "reward": round(m, 4), "se": round(se, 4),
                              "best_of_n_grader": round(statistics.mean(bon), 4),
                              "one_sample": round(statistics.mean(first), 4),
                              "tokens": round(statistics.mean(_tokens(rows[:n]) for rows in scored.values()), 1)})  # fmt: skip
    if pi_t:
        common = [ex for ex in scored if ex in pi_t]
        m, se = mean_se([pi_t[ex] for ex in common])
        out["pi_t"] = {"t": t, "reward": round(m, 4), "se": round(se, 4), "prompts": len(common)}
        n16 = [_pick(scored[ex][:16]).reward for ex in common]
        diff = [pi_t[ex] - float(x) for ex, x in zip(common, n16, strict=True)]
        d, dse = mean_se(diff)
        out["pi_t_minus_rerank_16"] = {"gain": round(d, 4), "se": round(dse, 4)}
    if args.prune_at > 0:
        out["prune"] = prune(
            models, betas, scored, args.prune_at, [int(x) for x in args.keep.split(",")]
        )
    if args.prefix_mean:
        cuts = [int(x) for x in args.prefix_mean.split(",")]
        out["prefix_mean"] = prefix_mean(models, betas, scored, cuts)
    if args.siblings and pi_rows:
        out["siblings"] = siblings(models[0].tokenizer, pi_rows, cfg.search.l)
    print(json.dumps(out, indent=1))


def _cut_at(tok, text: str, at: int) -> int:
    """Character position after the first `at` tokens of text (its length when shorter)."""
    spans = tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return spans[at - 1][1] if len(spans) > at else len(text)


def _pair_accuracy(items: list) -> tuple[int, int]:
    """(right, pairs) over the pairs of (score, reward) items with different rewards."""
    right = total = 0
    for (sa, ra), (sb, rb) in itertools.combinations(items, 2):
        if ra != rb:
            total += 1
            right += (sa > sb) == (ra > rb)
    return right, total


def prefix_mean(models: list, betas: list[float], scored: dict, cuts: list[int]) -> dict:
    """Rerank by the mean of S over the answer's prefixes at `cuts` tokens and its end, against
    S of the whole answer: pair accuracy and the pick at n = 16."""
    tok = models[0].tokenizer
    rows = [r for ex in scored for r, _ in scored[ex]]
    means = [s for ex in scored for _, s in scored[ex]]
    for at in cuts:
        cut = [_cut_at(tok, r.response, at) for r in rows]
        s = weighted_scores(
            models,
            [1 / b for b in betas],
            [r.prompt for r in rows],
            [r.response for r in rows],
            cut,
        )
        means = [m + x for m, x in zip(means, s, strict=True)]
    means = [m / (len(cuts) + 1) for m in means]
    at, gains, acc = 0, [], {"end": [0, 0], "mean": [0, 0]}
    for pairs in scored.values():
        mine = list(zip([r for r, _ in pairs], means[at : at + len(pairs)], strict=True))
        at += len(pairs)
        gains.append(float(_pick(mine[:16]).reward) - float(_pick(pairs[:16]).reward))
        for key, items in (("end", pairs), ("mean", mine)):
            r, n = _pair_accuracy([(s, float(row.reward)) for row, s in items])
            acc[key][0] += r
            acc[key][1] += n
    g, se = mean_se(gains)
    return {"cuts": cuts, "pair_accuracy_end": round(acc["end"][0] / max(1, acc["end"][1]), 4),
           "pair_accuracy_mean": round(acc["mean"][0] / max(1, acc["mean"][1]), 4),
           "pairs": acc["end"][1], "pick16_gain": round(g, 4), "pick16_gain_se": round(se, 4)}  # fmt: skip


def siblings(tok, pi_rows: dict, chunk: int) -> list:
    """Pair accuracy of the stored search scores S among pi_t's answers (same prompt, different
    rewards), by the number of whole chunks the two answers share (0: they part in the first)."""
    tally: dict[int, list[int]] = {}
    for rows in pi_rows.values():
        ids = [
            (tuple(tok.encode(r.response, add_special_tokens=False)), r.score, float(r.reward))
            for r in rows
            if r.reward is not None and r.score is not None
        ]
        for (a, sa, ra), (b, sb, rb) in itertools.combinations(ids, 2):
            if ra == rb or a == b:
                continue
            same = 0
            while same < min(len(a), len(b)) and a[same] == b[same]:
                same += 1
            t = tally.setdefault(same // chunk, [0, 0])
            t[0] += (sa > sb) == (ra > rb)
            t[1] += 1
    return [{"shared_chunks": k, "pairs": n, "accuracy": round(r / n, 4)}
            for k, (r, n) in sorted(tally.items())]  # fmt: skip


def _tokens(rows: list) -> int:
    return sum(int(r.completion_tokens or 0) for r, _ in rows)


def rerank_within(rows: list, tokens: float) -> tuple[int, float]:
    """(n, reward): reranking the first n whole samples, n the largest that costs no more than
    `tokens` (at least 1)."""
    n = max([k for k in range(1, len(rows) + 1) if _tokens(rows[:k]) <= tokens] or [1])
    return n, float(_pick(rows[:n]).reward)


def prune(models: list, betas: list[float], scored: dict, at: int, keeps: list[int]) -> list:
    """Prune after `at` tokens: all samples' prefixes scored, the best m finished (module doc)."""
    tok = models[0].tokenizer
    exs = list(scored)
    prompts, answers, cuts = [], [], []
    for ex in exs:
        for r, _ in scored[ex]:
            prompts.append(r.prompt)
            answers.append(r.response)
            cuts.append(_cut_at(tok, r.response, at))
    early = weighted_scores(models, [1 / b for b in betas], prompts, answers, cuts)
    out, pos = [], 0
    early_by: dict[int, list[float]] = {}
    for ex in exs:
        early_by[ex] = early[pos : pos + len(scored[ex])]
        pos += len(scored[ex])
    for m in keeps:
        rewards, spent, rerank_same = [], [], []
        for ex in exs:
            rows = scored[ex]
            order = sorted(range(len(rows)), key=lambda i: -early_by[ex][i])[:m]
            kept = [rows[i] for i in sorted(order)]
            rewards.append(float(_pick(kept).reward))
            cost = sum(min(int(r.completion_tokens or 0), at) for r, _ in rows)
            cost += sum(max(0, int(r.completion_tokens or 0) - at) for r, _ in kept)
            spent.append(cost)
            rerank_same.append(rerank_within(rows, cost))
        mr, sr = mean_se(rewards)
        d, dse = mean_se([a - b for a, (_, b) in zip(rewards, rerank_same, strict=True)])
        out.append({
            "keep": m, "reward": round(mr, 4), "se": round(sr, 4),
            "tokens": round(statistics.mean(spent), 1),
            "rerank_same_tokens": round(statistics.mean(b for _, b in rerank_same), 4),
            "rerank_n": round(statistics.mean(n for n, _ in rerank_same), 2),
            "gain": round(d, 4), "gain_se": round(dse, 4),
        })  # fmt: skip
    return out


if __name__ == "__main__":
    main()
