"""Value-model objectives side by side on the same stored rollouts: no new sampling.

    .venv/bin/python benchmarks/bench_value_loss.py --run upbeat-demo [--db iro-runs/iro.db]
        [--losses mse,centered,pairwise] [--backbones minilm-l6] [--epochs 2] [--seeds 0,1]

Takes a finished run's iteration-1 training rollouts (the base policy's graded samples) and its
held-out prompts' graded base samples (the t=0 evaluation), trains V_1 on the former with each
objective (and each backbone), the run's own settings otherwise (L, seed, tuning, learning
rate), and measures on the latter what the search needs: within-prompt pair ranking accuracy of
every prefix (0.5 = chance), Kendall tau-b, and accuracy at the first prefix positions. Prints
JSON: one row per (backbone, loss, seed) and, per backbone, each objective's mean accuracy and its
difference from mse.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from iro_blackbox.iro.config import AlignConfig  # noqa: E402
from iro_blackbox.store import RunRepository, open_store  # noqa: E402
from iro_blackbox.value import RolloutData, make_value_examples, train_value_model  # noqa: E402
from iro_blackbox.value.ranking import heldout_ranking  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a finished run (name or id)")
    ap.add_argument("--db", default=None, help="its store (default: iro-runs/iro.db)")
    ap.add_argument("--losses", default="mse,centered,pairwise")
    ap.add_argument("--backbones", default=None, help="default: the run's value backbone")
    ap.add_argument("--epochs", type=int, default=None, help="default: the run's --value-epochs")
    ap.add_argument("--seeds", default="0", help="training seeds, e.g. 0,1,2")
    args = ap.parse_args()

    store = open_store(args.db)
    repo = RunRepository(store)
    row = repo.find(args.run)
    cfg = AlignConfig.from_dict(dict(row.config))
    train_rows = repo.rollouts(row.id, 1, "train", "sample")
    held_rows = repo.rollouts(row.id, 0, "eval", "best_of_n")

    def usable(rows: list) -> list[RolloutData]:
        return [
            RolloutData(r.prompt, r.response, float(r.reward), 1.0)
            for r in rows
            if r.reward is not None and r.grade_error is None
        ]

    train, held = usable(train_rows), usable(held_rows)
    if not train or not held:
        sys.exit(f"run {row.name}: no graded t=1 training rollouts or t=0 held-out samples")
    backbones = (args.backbones or cfg.value.value_backbone).split(",")
    results = []
    for backbone in backbones:
        for loss in args.losses.split(","):
            for seed in [int(s) for s in args.seeds.split(",")]:
                opts = {**cfg.to_dict(), "value_loss": loss, "value_backbone": backbone}
                if args.epochs:
                    opts["value_epochs"] = args.epochs
                value = AlignConfig.from_dict(opts).value
                tcfg = value.train_config(seed=seed, chunk_tokens=cfg.search.l, device="cpu")
                t0 = time.perf_counter()
                model, m = train_value_model(make_value_examples(train, tcfg), tcfg, progress=False)
                seconds = time.perf_counter() - t0
                h = heldout_ranking(model, held, tcfg)
                results.append(
                    {
                        "backbone": backbone,
                        "loss": loss,
                        "seed": seed,
                        "heldout_accuracy": h.get("accuracy"),
                        "heldout_kendall_tau": h.get("kendall_tau"),
                        "heldout_pairs": h.get("pairs"),
                        "heldout_by_position": {
                            p: round(v["accuracy"], 3)
                            for p, v in list(h.get("by_position", {}).items())[:5]
                        },
                        "val_mse_ratio": m.get("val_mse_ratio"),
                        "val_pairwise_accuracy": m.get("val_pairwise_accuracy"),
                        "train_seconds": round(seconds, 1),
                    }
                )
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    summary = {}
    for backbone in backbones:
        by_loss = {}
        for loss in args.losses.split(","):
            accs = [
                r["heldout_accuracy"]
                for r in results
                if r["backbone"] == backbone and r["loss"] == loss and r["heldout_accuracy"]
            ]
            by_loss[loss] = statistics.mean(accs) if accs else None
        base = by_loss.get("mse")
        summary[backbone] = {
            loss: {
                "heldout_accuracy": acc,
                "vs_mse": None if acc is None or base is None else round(acc - base, 4),
            }
            for loss, acc in by_loss.items()
        }
    print(
        json.dumps(
            {
                "run": row.name,
                "train_rollouts": len(train),
                "train_prompts": len({r.prompt for r in train}),
                "heldout_answers": len(held),
                "heldout_prompts": len({r.prompt for r in held}),
                "results": results,
                "summary": summary,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
