"""The value-model lab: variants side by side on a finished run's stored rollouts, no sampling.

    .venv/bin/python benchmarks/value_lab.py --run ifeval-lab \
        --variants minilm,smollm2:head,minilm:cross=4,genrm-zero --seeds 0,1 \
        [--curves] [--db iro-runs/iro.db] [--out lab.json]

Trains each variant on the run's iteration-1 rollouts (its base samples on the training prompts)
and measures, on the held-out prompts' graded base samples, within-prompt same-position pair
accuracy (0.5 = chance), Kendall tau-b and training time, per seed and as mean and spread over
seeds. `--curves` adds learning curves: 25/50/100% of each prompt's rollouts, and of the prompts.
Variant syntax: iro_blackbox/iro/lab.py (backbone[:tuning][:loss][:key=value...]).
Prints one JSON line per trained model to stderr as it goes and the summary JSON to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from iro_blackbox.graders import load_grader  # noqa: E402
from iro_blackbox.iro.lab import load_lab_data, parse_variant, run_lab, summarize  # noqa: E402
from iro_blackbox.store import RunRepository, open_store  # noqa: E402

CURVES = [(1.0, 0.25), (1.0, 0.5), (0.25, 1.0), (0.5, 1.0), (1.0, 1.0)]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a run whose iteration 1 is stored")
    ap.add_argument("--db", default=None, help="its store (default: iro-runs/iro.db)")
    ap.add_argument(
        "--variants",
        default="minilm",
        help="comma-separated variants (iro/lab.py: minilm, smollm2:head, twotower:pairwise:"
        "cross=8:al=8, genrm-zero, genrm-ft:top=2, ...)",
    )
    ap.add_argument("--seeds", default="0,1", help="training seeds")
    ap.add_argument("--curves", action="store_true", help="learning curves (prompts, rollouts)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument(
        "--held-per-prompt",
        type=int,
        default=None,
        help="measure on the first N answers of each held-out prompt (default: all)",
    )
    args = ap.parse_args()

    repo = RunRepository(open_store(args.db))
    data = load_lab_data(repo, args.run)
    variants = [parse_variant(v) for v in args.variants.split(",")]
    grader = None
    if any(v.cross for v in variants):
        grader = load_grader(data.cfg.run.grader)
    rows = await run_lab(
        data,
        variants,
        seeds=[int(s) for s in args.seeds.split(",")],
        fractions=CURVES if args.curves else [(1.0, 1.0)],
        grader=grader,
        on_row=lambda r: print(json.dumps(r), file=sys.stderr, flush=True),
        held_per_prompt=args.held_per_prompt,
    )
    if grader is not None and hasattr(grader, "aclose"):
        await grader.aclose()
    result = {
        "run": data.run,
        "train_prompts": len({r.prompt for r in data.train}),
        "train_rollouts": len(data.train),
        "heldout_prompts": len({r.prompt for r in data.held}),
        "heldout_answers": len(data.held),
        "summary": summarize(rows),
        "rows": rows,
    }
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    asyncio.run(main())
