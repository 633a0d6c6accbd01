"""More graded base samples of a finished run's held-out prompts, for a less noisy rerank baseline.

    .venv/bin/python benchmarks/base_samples.py --run ifeval-v10 \\
        --data examples/ifeval/eval.jsonl --n 48 --out iro-runs/ifeval-v10-base48.jsonl

A run's evaluation stores 16 base samples per held-out prompt; reranking one set of 16 is a
noisy estimate of `--policy rerank` at N = 16. This draws n more per prompt from the run's own
provider and sampling settings, with a seed of their own (never the run's), grades every one and
writes a JSONL line per prompt: {"prompt", "samples": [{"response", "reward", "tokens"}]}.
`rerank_stored.py --extra FILE` then averages reranking over every 16-subset of all the samples
(exactly, not by drawing subsets). Written prompt by prompt: a rerun resumes where it stopped.
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

from iro_blackbox.dataset import load_examples, prompt_text  # noqa: E402
from iro_blackbox.iro.policy import load_run  # noqa: E402
from iro_blackbox.utils import derive_seed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a finished run")
    ap.add_argument("--data", required=True, help="its held-out prompts (JSONL)")
    ap.add_argument("--n", type=int, default=48, help="samples per prompt")
    ap.add_argument("--out", required=True, help="JSONL to write (appended to; resumes)")
    ap.add_argument(
        "--seed",
        type=int,
        default=None,
        help="sampling seed (default: derived from the run's seed and 'base-extra', "
        "never the seed of the run's own base evaluation)",
    )
    ap.add_argument("--db", default=None, help="the run's store (default: iro-runs/iro.db)")
    ap.add_argument("--batch", type=int, default=16, help="prompts per call (written after each)")
    args = ap.parse_args()

    out = Path(args.out)
    done = set()
    if out.exists():
        done = {json.loads(x)["prompt"] for x in out.read_text().splitlines() if x.strip()}
    policy = load_run(args.run, db=args.db)
    seed = args.seed
    if seed is None:
        seed = derive_seed(policy.cfg.run.seed, ("base-extra",)) % (2**31)
    todo = [e for e in load_examples(args.data) if prompt_text(e.prompt) not in done]
    print(f"{len(done)} prompts done, {len(todo)} to sample (n={args.n}, seed={seed})", flush=True)

    async def go() -> None:
        try:
            for at in range(0, len(todo), args.batch):
                batch = todo[at : at + args.batch]
                # one seed per batch position: the same prompt gets the same samples on a rerun
                params = policy.search_params(seed=seed + at, n=args.n, final="grader")
                res = await policy.asearch(batch, params, method="best_of_n", grader=policy.grader)
                with out.open("a") as f:
                    for r in res:
                        samples = [
                            {"response": c.text, "reward": c.reward, "tokens": c.completion_tokens}
                            for c in r.candidates
                            if c.reward is not None and c.grade_error is None
                        ]
                        line = {"prompt": prompt_text(r.example.prompt), "samples": samples}
                        f.write(json.dumps(line) + "\n")
                print(f"{at + len(batch)}/{len(todo)} prompts", flush=True)
        finally:
            await policy.aclose()

    asyncio.run(go())


if __name__ == "__main__":
    main()
