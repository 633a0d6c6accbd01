"""The gate's question asked on the held-out prompts: would V_t have helped? No new sampling.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gate_heldout.py --run ifeval-v7 --t 2

The gate decides on a slice of the training prompts whether the search's score with V_t
(sum of V_i / beta_i over the value models in use, plus V_t / beta_t) ranks same-prompt prefixes
better than without it. This asks the same of pi_{t-1}'s graded answers on the run's held-out
prompts (never seen by any V_i), prefixes cut as for training, and prints as JSON the pair
accuracy of the score without V_t, of V_t alone and of the score with V_t, with the gate's own
figures beside them: whether its verdict holds on prompts it never saw.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from iro_blackbox.iro.config import AlignConfig  # noqa: E402
from iro_blackbox.iro.trainer import DefaultValueTrainer  # noqa: E402
from iro_blackbox.iro.value_checks import gate_passed  # noqa: E402
from iro_blackbox.store import RunRepository, open_store  # noqa: E402
from iro_blackbox.value import RolloutData  # noqa: E402
from iro_blackbox.value.combine import WeightedValue  # noqa: E402
from iro_blackbox.value.data import make_value_examples  # noqa: E402
from iro_blackbox.value.ranking import rank_examples  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a run with V_t trained")
    ap.add_argument("--db", default="iro-runs/iro.db", help="the store (SQLite file)")
    ap.add_argument("--t", type=int, required=True, help="the iteration whose V_t is asked (>= 2)")
    args = ap.parse_args()
    if args.t < 2:
        sys.exit("--t must be 2 or more (V_1 is checked against no value model: chance)")
    repo = RunRepository(open_store(f"sqlite:///{args.db}"))
    run = repo.find(args.run)
    cfg = AlignConfig.from_dict(dict(run.config))
    records = repo.value_models(run.id, upto=args.t)
    if len(records) < args.t:
        sys.exit(f"run {run.name}: V_{args.t} is not trained")
    trainer = DefaultValueTrainer(cfg, progress=False)
    betas = cfg.search.betas(args.t)
    earlier = [r for r in records[:-1] if gate_passed(cfg, r.metrics)]
    models = {r.t: trainer.load(r.path) for r in [*earlier, records[-1]]}
    rows = [
        RolloutData(r.prompt, r.response, float(r.reward), 1.0)
        for r in repo.rollouts(run.id, args.t - 1, "eval", cfg.search.policy)
        if r.reward is not None and r.grade_error is None
    ]
    vt = models[args.t]
    examples = make_value_examples(rows, trainer._train_config(args.t), tokenizer=vt.tokenizer)
    texts = [r.response for r in rows]
    out = {"run": run.name, "t": args.t, "in_use_before": [f"V_{r.t}" for r in earlier]}
    scorers = {
        "without_V_t": WeightedValue(
            [models[r.t] for r in earlier], [1 / betas[r.t - 1] for r in earlier]
        )
        if earlier
        else None,
        "V_t_alone": WeightedValue([vt], [1 / betas[args.t - 1]]),
        "with_V_t": WeightedValue(
            [models[r.t] for r in [*earlier, records[-1]]],
            [1 / betas[r.t - 1] for r in [*earlier, records[-1]]],
        ),
    }
    for name, scorer in scorers.items():
        if scorer is None:
            out[name] = {"accuracy": 0.5, "note": "no value model in use: chance"}
            continue
        m = rank_examples(scorer, examples, texts)
        out[name] = {"accuracy": round(m["accuracy"], 4), "pairs": m["pairs"]}
    gate = (records[-1].metrics or {}).get("gate") or {}
    out["gate_on_training_slice"] = {
        k: gate.get(k)
        for k in ("prompts", "pairs", "accuracy_with", "accuracy_without", "accepted")
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
