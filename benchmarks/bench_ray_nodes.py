"""Rollout throughput of the `ray` executor with one worker node against two, side by side in one
run, on a Ray cluster simulated in this process tree (ray.cluster_utils.Cluster: a head that runs
nothing and two one-CPU nodes).

    .venv/bin/python benchmarks/bench_ray_nodes.py [--prompts 16] [--n 4] [--max-tokens 48]
        [--repeats 2]

Each round runs `align` (one iteration, the hf provider on the shipped SmolLM2) twice on a fresh
SQLite store: with one SearchWorker (one node busy) and with two (Ray's SPREAD places them on both
nodes). The figure is the iteration-1 rollout stage (prompts x n whole answers, graded), timed from
the progress stream: its first snapshot to the first of the next stage; workers have loaded their
model by then (the base evaluation runs first). The two settings alternate so machine drift hits
both. Prints JSON: seconds and generated tokens per second for each, and speedup = tokens/s with
two nodes over one (ideal 2.0; this machine has 2 cores, so Ray's own processes and the driver
compete with the workers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

TOPICS = ["rain", "a queue", "a late train", "laundry", "a lost key", "burnt toast", "a missed bus",
          "snow", "a flat tyre", "cold coffee", "a long meeting", "a noisy flat", "traffic",
          "a broken umbrella", "a dead battery", "a cancelled flight"]  # fmt: skip
STORE_MB = 200 * 2**20


def write_data(folder: Path, n: int) -> tuple[Path, Path]:
    rows = [json.dumps({"id": f"p{i}", "prompt": f"Write one sentence about {t}."}) + "\n"
            for i, t in enumerate((TOPICS * (n // len(TOPICS) + 1))[:n])]  # fmt: skip
    train, evals = folder / "train.jsonl", folder / "eval.jsonl"
    train.write_text("".join(rows))
    evals.write_text(
        json.dumps({"id": "held-out", "prompt": "Write one sentence about fog."}) + "\n"
    )
    return train, evals


def rollout_stage(folder: Path, workers: int, args, seed: int) -> tuple[float, int]:
    from iro_blackbox.iro.config import AlignConfig
    from iro_blackbox.iro.loop import AlignLoop
    from iro_blackbox.store import open_store

    train, evals = write_data(folder, args.prompts)
    cfg = AlignConfig.from_dict(dict(
        data=str(train), eval=str(evals), executor="ray", ray_workers=workers, iterations=1,
        rollouts=args.n, w=2, k=2, l=8, max_tokens=args.max_tokens, value_epochs=1, seed=seed,
        out=str(folder / "run"),
    ))  # fmt: skip
    marks: dict[str, float] = {}
    tokens: dict[str, int] = {}

    def on_progress(snap: dict) -> None:
        stage = snap["stage"] or ""
        if stage.startswith("t=1 rollouts"):
            marks.setdefault("start", time.perf_counter())
            tokens["n"] = snap["tokens"]
        elif "start" in marks:
            marks.setdefault("end", time.perf_counter())

    store = open_store(str(folder / "store.db"))
    asyncio.run(AlignLoop(cfg, store, progress=False, on_progress=on_progress).run())
    return marks["end"] - marks["start"], tokens["n"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=16, help="training prompts")
    ap.add_argument("--n", type=int, default=4, help="samples per prompt")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 0, "object_store_memory": STORE_MB})  # fmt: skip
    for _ in range(2):
        cluster.add_node(num_cpus=1, object_store_memory=STORE_MB)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    seconds: dict[int, list[float]] = {1: [], 2: []}
    tps: dict[int, list[float]] = {1: [], 2: []}
    speedups = []
    try:
        for r in range(args.repeats):
            for workers in (1, 2):
                with tempfile.TemporaryDirectory() as tmp:
                    s, n = rollout_stage(Path(tmp), workers, args, seed=r)
                seconds[workers].append(s)
                tps[workers].append(n / s)
            speedups.append(tps[2][-1] / tps[1][-1])
    finally:
        ray.shutdown()
        cluster.shutdown()

    def med(xs: list[float]) -> float:
        return round(statistics.median(xs), 2)

    print(json.dumps({
        "prompts": args.prompts, "n": args.n, "max_tokens": args.max_tokens,
        "repeats": args.repeats,
        "rollout_stage_s": {"one_node": med(seconds[1]), "two_nodes": med(seconds[2])},
        "tokens_per_s": {"one_node": med(tps[1]), "two_nodes": med(tps[2])},
        "speedup_two_over_one": {"median": med(speedups), "min": round(min(speedups), 2),
                                 "max": round(max(speedups), 2)},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
