"""How much one two-tower head's seed moves V_1, and what averaging heads buys: no new sampling.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/value_heads.py --run ifeval-v7 [--heads 12]
        [--groups 2,4]

On a finished two-tower run's stored iteration-1 rollouts, this trains V_1 as the run's own
trainer does (the run's relabelling draw, its split with the gate's validation prompts held
apart, its head settings) but with `--heads` heads of consecutive seeds on features read once.
It prints, as JSON, each single head's held-out pair accuracy (same-prompt pairs of the run's
held-out base samples, cut as the lab cuts them) and its accuracy on the gate's validation
prompts, then the accuracy of disjoint groups of g heads averaged (what `--value-heads g` ships),
each list with its mean and standard deviation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from iro_blackbox.graders import load_grader  # noqa: E402
from iro_blackbox.iro.lab import heldout_examples, load_lab_data, rank  # noqa: E402
from iro_blackbox.iro.relabel import relabel  # noqa: E402
from iro_blackbox.iro.trainer import DefaultValueTrainer  # noqa: E402
from iro_blackbox.store import RunRepository, open_store  # noqa: E402
from iro_blackbox.value.data import make_value_examples, split_examples  # noqa: E402
from iro_blackbox.value.ranking import rank_examples  # noqa: E402
from iro_blackbox.value.twotower import TwoTowerValue, shared_towers, train_two_tower  # noqa: E402


def spread(xs: list[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.mean(xs), 4),
        "sd": round(statistics.stdev(xs), 4) if len(xs) > 1 else 0.0,
        "min": round(min(xs), 4),
        "max": round(max(xs), 4),
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, help="a finished two-tower run in the store")
    ap.add_argument("--db", default="iro-runs/iro.db", help="the store (SQLite file)")
    ap.add_argument("--heads", type=int, default=12, help="single heads trained (seeds 0..n-1)")
    ap.add_argument("--groups", default="2,4", help="sizes of the averaged groups of heads")
    args = ap.parse_args()
    groups = [int(x) for x in args.groups.split(",")]
    if args.heads < 2 or any(g < 1 or g > args.heads for g in groups):
        sys.exit("--heads must be 2 or more and each --groups size between 1 and --heads")
    repo = RunRepository(open_store(f"sqlite:///{args.db}"))
    data = load_lab_data(repo, args.run)
    if data.cfg.value.value_model != "twotower":
        sys.exit(f"{args.run}: not a two-tower run (--value-model {data.cfg.value.value_model})")
    held, answers = heldout_examples(data)
    rows = list(data.train)
    if data.cfg.value.value_relabel:  # the run's own draw (iro/loop.py: seed + t)
        grader = load_grader(data.cfg.run.grader)
        k = data.cfg.value.value_relabel
        rows += await relabel(data.train, data.items, grader, k=k, seed=data.cfg.run.seed + 1)
    trainer = DefaultValueTrainer(data.cfg, progress=False)
    tcfg = trainer._train_config(1)
    cfg = replace(trainer._tower_config(0), heads=args.heads)
    towers = shared_towers(cfg.backbone, cfg.prompt_layer, cfg.answer_layers)
    examples = make_value_examples(rows, tcfg, tokenizer=towers.tokenizer)
    train_idx, val_idx, _ = split_examples(examples, tcfg)
    t0 = time.perf_counter()
    model = train_two_tower(examples, rows, list(train_idx), cfg)
    took = time.perf_counter() - t0
    val = [examples[i] for i in val_idx]
    texts = [r.response for r in rows]
    singles, gate = [], []
    for head in model.heads:
        one = TwoTowerValue(towers, [head], model.stats)
        singles.append(rank(one, held, answers)["accuracy"])
        gate.append(rank_examples(one, val, texts)["accuracy"])
    out = {
        "run": args.run,
        "train_examples": len(train_idx),
        "gate_pairs_prompts": len({e.prompt for e in val}),
        "train_seconds_all_heads": round(took, 1),
        "single_heads": {"heldout": spread(singles), "gate": spread(gate)},
        "single_heldout": [round(x, 4) for x in singles],
    }
    for g in groups:
        accs = []
        for start in range(0, args.heads - g + 1, g):
            avg = TwoTowerValue(towers, model.heads[start : start + g], model.stats)
            accs.append(rank(avg, held, answers)["accuracy"])
        out[f"averaged_{g}"] = {"heldout": spread(accs), "each": [round(x, 4) for x in accs]}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
