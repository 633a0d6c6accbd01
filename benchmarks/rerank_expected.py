"""pi_t against `--policy rerank` at the same N, both as expectations rather than single draws.

    .venv/bin/python benchmarks/rerank_expected.py --run ifeval-v10 \\
        --extra iro-runs/ifeval-v10-base48.jsonl [--draws sv1.json,sv2.json] [--n 4,8,16]

A single set of 16 base samples per prompt and a single search per prompt make the paired gain
of pi_t over reranking noisy (most of its standard error is sampling noise inside each prompt).
Here every held-out prompt has M base samples: the run's stored 16 plus those of
base_samples.py (--extra), all scored by the run's value models. Reranking n of them is
averaged over EVERY n-subset of the M exactly: ranked by the pick's order (non-empty answers
first, then higher S), the answer at rank j is the pick of a random n-subset with probability
C(M-1-j, n-1) / C(M, n). Best-of-n by the grader likewise. pi_t is the mean over the run's own
stored search and the per-prompt files of `search_variants.py --per-prompt` (other seeds, same
settings). Printed as JSON: each mean with its standard error over prompts and the paired gains.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from math import comb
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rerank_stored import mean_se, stored_pi_t, stored_scores  # noqa: E402

from iro_blackbox.store import RunRepository, open_store  # noqa: E402
from iro_blackbox.value.combine import weighted_scores  # noqa: E402


def _expected_first(rewards_in_order: list[float], n: int) -> float:
    """E[reward of the first item, in this order, of a uniformly random n-subset]: the item at
    rank j is that first with probability C(M-1-j, n-1) / C(M, n)."""
    m = len(rewards_in_order)
    return sum(comb(m - 1 - j, n - 1) * r for j, r in enumerate(rewards_in_order)) / comb(m, n)


def expected_pick(items: list[tuple[str, float, float]], n: int) -> float:
    """E[reward of the value pick among a uniformly random n-subset]; items (text, S, reward),
    ranked as value_pick ranks them: non-empty answers first, then higher S."""
    order = sorted(items, key=lambda x: (not x[0].strip(), -x[1]))
    return _expected_first([r for _, _, r in order], n)


def expected_best(rewards: list[float], n: int) -> float:
    """E[max reward among a uniformly random n-subset] (Best-of-n by the grader)."""
    return _expected_first(sorted(rewards, reverse=True), n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a finished run")
    ap.add_argument("--extra", required=True, help="base_samples.py output (JSONL)")
    ap.add_argument(
        "--draws",
        default="",
        help="','-separated search_variants.py --per-prompt files of further pi_t draws, one "
        "seed each (--draws 1; the file's first variant is used)",
    )
    ap.add_argument(
        "--compare",
        default="",
        help="','-separated search_variants.py --per-prompt files of other searches, each "
        "printed against reranking at --compare-n and against pi_t (paired, same prompts)",
    )
    ap.add_argument("--compare-n", type=int, default=16, help="N of the --compare rows")
    ap.add_argument("--n", default="1,2,4,8,16", help="numbers of samples to rerank")
    ap.add_argument("--db", default=None, help="the run's store (default: iro-runs/iro.db)")
    args = ap.parse_args()

    repo = RunRepository(open_store(args.db))
    run, t, used, models, betas, scored = stored_scores(repo, args.run, None)
    by_prompt = {rows[0][0].prompt: rows for rows in scored.values()}
    extra = {}
    for line in Path(args.extra).read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            extra[d["prompt"]] = d["samples"]
    prompts = [p for p in by_prompt if p in extra]
    flat = [(p, s["response"]) for p in prompts for s in extra[p]]
    extra_s = weighted_scores(
        models, [1 / b for b in betas], [p for p, _ in flat], [a for _, a in flat]
    )
    items: dict[str, list[tuple[str, float, float]]] = {}
    tokens: list[int] = []  # of every sample: reranking n costs n times their mean
    at = 0
    for p in prompts:
        mine = [(r.response, float(s), float(r.reward)) for r, s in by_prompt[p]]
        tokens += [int(r.completion_tokens or 0) for r, _ in by_prompt[p]]
        tokens += [int(s["tokens"]) for s in extra[p]]
        for s in extra[p]:
            mine.append((s["response"], float(extra_s[at]), float(s["reward"])))
            at += 1
        items[p] = mine

    # pi_t: the run's stored search (its value pick) and the further draws, averaged per prompt
    ex_prompt = {ex: rows[0][0].prompt for ex, rows in scored.items()}
    _, picks = stored_pi_t(repo, run, t)
    pi = {ex_prompt[ex]: [r] for ex, r in picks.items() if ex in ex_prompt}
    for f in filter(None, args.draws.split(",")):
        for p, r in _per_prompt(f)["rewards"].items():
            if p in pi:
                pi[p].append(float(r))
    common = [p for p in prompts if p in pi]
    pi_mean = {p: statistics.mean(pi[p]) for p in common}
    out: dict = {
        "run": run.name, "value_models": [f"V_{r.t}" for r in used], "prompts": len(common),
        "samples_per_prompt": round(statistics.mean(len(items[p]) for p in common), 1),
        "pi_t_draws_per_prompt": round(statistics.mean(len(pi[p]) for p in common), 2),
        "pi_t": _mse([pi_mean[p] for p in common]),
        "rerank": [],
    }  # fmt: skip
    for n in [int(x) for x in args.n.split(",")]:
        rr = {p: expected_pick(items[p], n) for p in common}
        bon = [expected_best([r for _, _, r in items[p]], n) for p in common]
        m, se = mean_se(list(rr.values()))
        d, dse = mean_se([pi_mean[p] - rr[p] for p in common])
        out["rerank"].append({
            "n": n, "reward": _r(m), "se": _r(se), "best_of_n_grader": _r(statistics.mean(bon)),
            "tokens": round(n * statistics.mean(tokens), 1),
            "pi_t_minus_rerank": _r(d), "gain_se": _r(dse),
        })  # fmt: skip
    rr = {p: expected_pick(items[p], args.compare_n) for p in common}
    out["compare"] = []
    for f in filter(None, args.compare.split(",")):
        got = _per_prompt(f)
        mine = {p: float(r) for p, r in got["rewards"].items() if p in pi_mean}
        both = [p for p in common if p in mine]
        d, dse = mean_se([mine[p] - rr[p] for p in both])
        dp, dpse = mean_se([mine[p] - pi_mean[p] for p in both])
        out["compare"].append({
            "file": f, "variant": got["variant"], "prompts": len(both),
            **_mse([mine[p] for p in both]), f"minus_rerank_{args.compare_n}": _r(d),
            "gain_se": _r(dse), "minus_pi_t": _r(dp), "minus_pi_t_se": _r(dpse),
        })  # fmt: skip
    print(json.dumps(out, indent=1))


def _per_prompt(path: str) -> dict:
    """The first variant of a search_variants.py --per-prompt file."""
    return json.loads(Path(path).read_text())[0]


def _mse(xs: list[float]) -> dict:
    m, se = mean_se(xs)
    return {"reward": _r(m), "se": _r(se)}


def _r(x: float) -> float:
    return round(x, 4)


if __name__ == "__main__":
    main()
