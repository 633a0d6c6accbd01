"""A full chunk-level beam search (the hf provider + a MiniLM value model scoring every prefix)
against the hf provider's own plain sampling of the same rows, per generated token, side by side
in one process.

    .venv/bin/python benchmarks/bench_cbs_vs_sample.py [--prompts 4] [--w 4 --k 4 --l 16]
        [--max-tokens 128] [--repeats 5] [--threads 0] [--precisions fp32,bf16]
        [--value iro-runs/ifeval-v7/value/v1 | --two-tower-layers 8]

plain: the `sample` search, n = W*K whole answers of max_tokens per prompt (the prompts' rows go
       through the provider together: one batched generation).
cbs:   the `cbs` search with W, K, L: every step extends every live beam by K chunks of L tokens
       (KV reuse through handles), scores the W*K prefixes with the value model and keeps W; once
       per value-model scoring precision (fp32, the default, and bf16). `--value FOLDER`: a saved value
model instead (e.g. a run's two-tower V_1, which reads the prompt and answer with SmolLM2's own
layers), scored as saved; `--two-tower-layers N`: a two-tower model on the policy's own weights
with N answer layers and 4 untrained heads (the same cost as a trained one, no run needed). A
two-tower model runs twice per round: each candidate read on from its parent beam's cached
answer-tower states ("reuse", what the search does) and read whole ("whole", as before).
They run alternately (plain, cbs fp32, cbs bf16, plain, ...) so machine drift hits all; every
figure is a median with its min and max. The ratio is cbs seconds per generated token over plain
seconds per generated token in the same round (target <= 1.15); `cbs_breakdown` splits one cbs
run into time waiting on the provider and on the value model.

Where the time goes (measured here, 2 cores): generation inside CBS costs the same per token as
plain sampling (KV reuse through handles re-encodes nothing); the difference is the value model,
which re-reads prompt + prefix for all W*K candidates at every step (about 20 ms a prefix for
MiniLM in fp32, a third of that in bf16).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TOPICS = ["a lighthouse keeper", "a rainy Monday", "a lost umbrella", "a city at night",
          "a garden in winter", "an old train", "a quiet library", "a mountain village"]  # fmt: skip


def examples(n: int):
    from iro_blackbox.dataset import Example

    return [
        Example(id=f"p{i}", prompt=[{"role": "user", "content": f"Write a story about {t}."}])
        for i, t in enumerate((TOPICS * (n // len(TOPICS) + 1))[:n])
    ]


async def run_search(name: str, exs, provider, scorer, params) -> tuple[float, int, list]:
    from iro_blackbox.registry import SEARCHES

    t0 = time.perf_counter()
    res = await SEARCHES.get(name)(exs, provider, scorer, params)
    took = time.perf_counter() - t0
    return took, sum(r.usage.completion_tokens for r in res), res


def spread(xs: list[float], digits: int = 3) -> dict[str, float]:
    return {
        "median": round(statistics.median(xs), digits),
        "min": round(min(xs), digits),
        "max": round(max(xs), digits),
    }


def untrained_two_tower(model: str, layers: int):
    """A two-tower value model with random heads: the towers' cost is that of a trained one."""
    import torch

    from iro_blackbox.value.twotower import Head, TwoTowerConfig, TwoTowerValue, shared_towers

    cfg = TwoTowerConfig(backbone=model, answer_layers=layers)
    towers = shared_towers(cfg.backbone, cfg.prompt_layer, cfg.answer_layers, cfg.joint, cfg.pool)
    torch.manual_seed(0)
    heads = [Head(towers.dim, cfg.hidden, cfg.dropout).eval() for _ in range(4)]
    zeros, ones = torch.zeros(towers.dim), torch.ones(towers.dim)
    stats = {"p_mean": zeros, "p_std": ones, "r_mean": zeros, "r_std": ones, "y_mean": 0.0,
             "y_std": 1.0}  # fmt: skip
    return TwoTowerValue(towers, heads, stats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--backbone", default="minilm-l6", help="value-model backbone")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--w", type=int, default=4)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--l", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument(
        "--precisions",
        default="fp32,bf16",
        help="value-model scoring precisions (ignored with --value: scored as saved); for a "
        "two-tower model: reuse, whole (reading each candidate on from its parent, or whole)",
    )
    ap.add_argument(
        "--value", default=None, help="a saved value model folder (default: --backbone)"
    )
    ap.add_argument(
        "--two-tower-layers",
        type=int,
        default=None,
        help="instead: a two-tower value model on --model's own weights with this many answer "
        "layers and 4 untrained heads (speed only: no run needed)",
    )
    args = ap.parse_args()
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from iro_blackbox.params import SamplingParams
    from iro_blackbox.providers.hf import HFProvider
    from iro_blackbox.search import CombinedScorer, SearchParams
    from iro_blackbox.value import ValueConfig, ValueModel, load_saved

    provider = HFProvider(args.model)
    if args.two_tower_layers is not None:
        vm = untrained_two_tower(args.model, args.two_tower_layers)
    elif args.value:
        vm = load_saved(args.value, device="cpu")
        precisions = ["saved"]
    else:
        vm = ValueModel.from_config(ValueConfig(backbone=args.backbone))
    towers = getattr(vm, "towers", None)
    if towers is not None:  # a two-tower model: candidates read on from their parents, or whole
        precisions = [p for p in precisions if p in ("reuse", "whole")] or ["reuse", "whole"]
    exs = examples(args.prompts)

    def params(seed: int) -> SearchParams:
        return SearchParams(
            w=args.w,
            k=args.k,
            l=args.l,
            max_tokens=args.max_tokens,
            sampling=SamplingParams(temperature=1.0, seed=seed),
            concurrency=max(8, args.prompts),
        )

    # warm-up: both paths, small
    small = SearchParams(w=2, k=2, l=4, max_tokens=8, sampling=SamplingParams(seed=0))
    asyncio.run(run_search("sample", exs[:1], provider, None, small))
    asyncio.run(run_search("cbs", exs[:1], provider, CombinedScorer([vm]), small))

    kinds = ["plain"] + [f"cbs_{p}" for p in precisions]
    per_token: dict[str, list[float]] = {k: [] for k in kinds}
    seconds: dict[str, list[float]] = {k: [] for k in kinds}
    tokens: dict[str, list[int]] = {k: [] for k in kinds}
    ratios: dict[str, list[float]] = {k: [] for k in kinds[1:]}
    breakdown: dict[str, dict] = {}
    for r in range(args.repeats):
        s, n, _ = asyncio.run(run_search("sample", exs, provider, None, params(100 + r)))
        per_token["plain"].append(s / n)
        seconds["plain"].append(s)
        tokens["plain"].append(n)
        line = [f"repeat {r}: plain {s:.1f}s ({n} tok)"]
        for prec in precisions:
            kind = f"cbs_{prec}"
            if towers is not None:  # nothing cached from the previous run of the same seeds
                towers.reuse_prefixes = prec == "reuse"
                towers._tables.clear()
                towers.prefixes.clear()
            elif prec != "saved":
                vm.config = vm.config.replace(precision=prec)
            s, n, res = asyncio.run(
                run_search("cbs", exs, provider, CombinedScorer([vm]), params(200 + r))
            )
            per_token[kind].append(s / n)
            seconds[kind].append(s)
            tokens[kind].append(n)
            ratios[kind].append(per_token[kind][-1] / per_token["plain"][-1])
            breakdown[kind] = {  # the last run; the prompts share calls: waits are per prompt
                "seconds": round(s, 2),
                "provider_wait_s": round(max(x.usage.generate_seconds for x in res), 2),
                "value_model_wait_s": round(max(x.usage.score_seconds for x in res), 2),
                "steps": max(x.usage.steps for x in res),
                "prefixes_scored": sum(x.usage.scored for x in res),
            }
            line.append(f"{kind} {s:.1f}s ({n} tok, ratio/token {ratios[kind][-1]:.2f})")
        print(", ".join(line), file=sys.stderr)

    print(
        json.dumps(
            {
                "model": provider.model_name,
                "value_backbone": args.value
                or (
                    f"two-tower, {args.two_tower_layers} answer layers"
                    if towers is not None
                    else args.backbone
                ),
                "device": provider.device,
                "torch_threads": torch.get_num_threads(),
                "prompts": args.prompts,
                "w": args.w,
                "k": args.k,
                "l": args.l,
                "max_tokens": args.max_tokens,
                "repeats": args.repeats,
                "seconds": {k: spread(v, 2) for k, v in seconds.items()},
                "tokens": {k: spread(v, 0) for k, v in tokens.items()},
                "ms_per_token": {k: spread([1000 * x for x in v], 2) for k, v in per_token.items()},
                "ratio_cbs_over_plain_per_token": {k: spread(v) for k, v in ratios.items()},
                "target_ratio": 1.15,
                "meets_target": {k: statistics.median(v) <= 1.15 for k, v in ratios.items()},
                "cbs_breakdown": breakdown,
                "kv": provider.cache_info(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
