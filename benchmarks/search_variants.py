"""Guided-search variants on a finished run's held-out prompts against reranking, paired.

Reranking is of the run's stored base samples, by the same value models (no new base sampling).

    .venv/bin/python benchmarks/search_variants.py --run ifeval-v10 \\
        --data examples/ifeval/eval.jsonl --variants "w=4,k=4;w=4,k_first=10,k=1" [--seed 7]

Each variant is a set of search overrides (w, k, k_first, l, selection, selection_temperature)
on the run's settings; it runs the run's policy (cbs guided by V_1..V_t the gate let steer) on
every held-out prompt and answers by value score alone, as `iro-bb generate` does (with
`--draws D`, D times with seeds seed .. seed+D-1, averaged per prompt). Printed as
JSON per variant: mean reward and its standard error, tokens per prompt, the grader's pick among
the search's answers, and the paired gain over reranking the run's stored base samples by the
same value models at n = 16 and at no more tokens than the variant spent (rerank_stored.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rerank_stored import _pick, mean_se, rerank_within, stored_scores  # noqa: E402

from iro_blackbox.dataset import load_examples, prompt_text  # noqa: E402
from iro_blackbox.iro.policy import load_run  # noqa: E402
from iro_blackbox.search import value_pick  # noqa: E402
from iro_blackbox.store import RunRepository, open_store  # noqa: E402
from iro_blackbox.utils import derive_seed  # noqa: E402

KEYS = {"w": int, "k": int, "k_first": int, "l": int, "selection": str,
        "selection_temperature": float}  # fmt: skip


def parse_variants(text: str) -> list[dict]:
    out = []
    for part in text.split(";"):
        v: dict = {}
        for item in filter(None, (x.strip() for x in part.split(","))):
            key, _, val = item.partition("=")
            if key not in KEYS:
                sys.exit(f"unknown search setting {key!r}: choose from {', '.join(KEYS)}")
            v[key] = KEYS[key](val)
        out.append(v)
    return out


async def run_variant(policy, examples, variant: dict, seed: int | None) -> dict:
    rest = {k: v for k, v in variant.items() if k.startswith("selection")}
    params = policy.search_params(
        final="grader", seed=seed, **{k: v for k, v in variant.items() if k not in rest}
    )
    if rest:
        params = replace(params, **rest)
    res = await policy.asearch(examples, params, method="cbs", grader=policy.grader)
    out = {}
    for r in res:
        i = value_pick([c.text for c in r.candidates], [c.score for c in r.candidates])
        out[prompt_text(r.example.prompt)] = (
            float(r.candidates[i].reward or 0.0),
            float(r.best.reward or 0.0),
            r.usage.completion_tokens,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a finished run")
    ap.add_argument("--data", required=True, help="its held-out prompts (JSONL)")
    ap.add_argument("--variants", default="w=4,k=4", help="';'-separated search overrides")
    ap.add_argument(
        "--seed",
        type=int,
        default=None,
        help="sampling seed (default: the one the run's own pi_t evaluation used, so the variant "
        "w=<W>,k=<K> with the run's W and K draws the run's very answers)",
    )
    ap.add_argument(
        "--draws",
        type=int,
        default=1,
        help="search each prompt this many times (seeds seed, seed+1, ...) and average per prompt: "
        "less sampling noise in the paired gain",
    )
    ap.add_argument("--per-prompt", default=None, help="also write per-prompt rewards (JSON)")
    ap.add_argument("--db", default=None, help="the run's store (default: iro-runs/iro.db)")
    ap.add_argument("--limit", type=int, default=None, help="first N held-out prompts only")
    args = ap.parse_args()

    repo = RunRepository(open_store(args.db))
    run, t, used, _, _, scored = stored_scores(repo, args.run, None)
    stored = {rows[0][0].prompt: rows for rows in scored.values()}
    examples = load_examples(args.data)[: args.limit]
    policy = load_run(args.run, db=args.db)
    seed = args.seed
    if seed is None:  # as loop.py seeds the evaluation of pi_t
        seed = derive_seed(policy.cfg.run.seed, ("eval", t)) % (2**31)
    results, per_prompt = [], []
    try:
        for variant in parse_variants(args.variants):
            draws = [
                asyncio.run(run_variant(policy, examples, variant, seed + d))
                for d in range(args.draws)
            ]
            got = {  # per prompt: the mean over draws of (value pick, grader pick, tokens)
                p: tuple(statistics.mean(g[p][j] for g in draws) for j in range(3))
                for p in draws[0]
            }
            common = [p for p in got if p in stored]
            pick = [got[p][0] for p in common]
            spent = [got[p][2] for p in common]
            r16 = [float(_pick(stored[p][:16]).reward) for p in common]
            same = [rerank_within(stored[p], got[p][2])[1] for p in common]
            m, se = mean_se(pick)
            d16, se16 = mean_se([a - b for a, b in zip(pick, r16, strict=True)])
            ds, ses = mean_se([a - b for a, b in zip(pick, same, strict=True)])
            row = {
                "variant": variant, "prompts": len(common), "reward": round(m, 4),
                "se": round(se, 4), "tokens": round(statistics.mean(spent), 1),
                "grader_pick": round(statistics.mean(got[p][1] for p in common), 4),
                "rerank_16": round(statistics.mean(r16), 4),
                "gain_vs_rerank_16": round(d16, 4), "gain_se": round(se16, 4),
                "rerank_same_tokens": round(statistics.mean(same), 4),
                "gain_vs_rerank_same_tokens": round(ds, 4), "gain_same_se": round(ses, 4),
            }  # fmt: skip
            results.append(row)
            print(json.dumps(row), flush=True)
            per_prompt.append({"variant": variant, "rewards": {p: got[p][0] for p in common},
                               "rerank_16": dict(zip(common, r16, strict=True))})  # fmt: skip
    finally:
        asyncio.run(policy.aclose())
    if args.per_prompt:
        Path(args.per_prompt).write_text(json.dumps(per_prompt, indent=1))
    print(json.dumps({"run": run.name, "value_models": [f"V_{r.t}" for r in used],
                      "seed": seed, "draws": args.draws, "variants": results}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
