"""Throughput and latency of `iro-bb serve` with the local model, and what batching gains.

    .venv/bin/python benchmarks/bench_serve.py                 # shipped SmolLM2 + MiniLM value model
    .venv/bin/python benchmarks/bench_serve.py --run RUN --db iro-runs/iro.db   # a real run

For 1, 4 and 16 concurrent clients (each sends chat completions back to back) it measures
requests/s, tokens/s and p50/p95 latency, twice in the same process on the same model: with
request batching (concurrent requests searched together) and one request at a time
(--no-batching); the ratio is the gain from batching. Prints JSON.

Requests carry no seed by default, as most clients send none: the server then searches
concurrent requests in one `agenerate` call. With --seeded every request has its own seed, so the
two modes compute the same answers (up to float noise of batched matmuls; `identical_answers`
gives the fraction), but requests with different seeds cannot share one `agenerate` call: they
run as concurrent calls whose provider rows the local model still merges into one forward batch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TOPICS = [
    "a rainy Monday",
    "a queue at the post office",
    "a delayed train",
    "doing the laundry",
    "a broken umbrella",
    "a cold coffee",
    "a long meeting",
    "a flat tyre",
]


def build_policy(args: argparse.Namespace) -> Any:
    if args.run:
        from iro_blackbox.iro.policy import load_run

        return load_run(args.run, db=args.db, device="cpu")
    from iro_blackbox.iro.config import AlignConfig
    from iro_blackbox.iro.policy import AlignedPolicy
    from iro_blackbox.providers.hf import HFProvider
    from iro_blackbox.store import open_store
    from iro_blackbox.value import ValueConfig, ValueModel

    provider = HFProvider("smollm2-135m-instruct", device="cpu")
    vm = ValueModel.from_config(ValueConfig(backbone="minilm-l6", device="cpu"), seed=0)
    cfg = AlignConfig(data="bench.jsonl", w=args.w, k=args.k, l=args.l, max_tokens=args.max_tokens)
    store = open_store(str(Path(args.tmp) / "bench-serve.db"))
    return AlignedPolicy("bench", 0, cfg, store, provider, [vm], [1.0])


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


async def load(
    base_url: str, clients: int, total: int, max_tokens: int, tag: int, seeded: bool
) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    texts: dict[int, str] = {}
    tokens = 0
    queue = list(range(total))

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal tokens
        while queue:
            i = queue.pop(0)
            body = {
                "model": "bench",
                "max_tokens": max_tokens,
                "messages": [
                    {
                        "role": "user",
                        "content": f"Write one upbeat sentence about {TOPICS[i % len(TOPICS)]}.",
                    }
                ],
            }
            if seeded:
                body["seed"] = 1000 * tag + i
            t0 = time.perf_counter()
            async with session.post(base_url + "/chat/completions", json=body) as r:
                data = await r.json()
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status}: {data}")
            latencies.append(time.perf_counter() - t0)
            texts[i] = data["choices"][0]["message"]["content"]
            tokens += data["usage"]["completion_tokens"]

    timeout = aiohttp.ClientTimeout(total=3600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*[client(session) for _ in range(clients)])
        wall = time.perf_counter() - t0
    return {
        "clients": clients,
        "requests": total,
        "seconds": round(wall, 2),
        "requests_per_s": round(total / wall, 3),
        "tokens_per_s": round(tokens / wall, 2),
        "latency_p50_s": round(pct(latencies, 0.5), 2),
        "latency_p95_s": round(pct(latencies, 0.95), 2),
        "_texts": texts,
    }


async def bench(policy: Any, args: argparse.Namespace) -> dict[str, Any]:
    from iro_blackbox.serve import Limits, ServeConfig, start_server
    from iro_blackbox.serve.app import BATCHER

    modes = ("batched", "one_at_a_time")
    handles = {}
    for mode in modes:
        cfg = ServeConfig(
            model_name="bench",
            batching=mode == "batched",
            limits=Limits(default_max_tokens=args.max_tokens),
        )
        handles[mode] = await start_server(policy, cfg)
    out: dict[str, Any] = {m: {} for m in modes}
    texts: dict[str, dict[int, dict[int, str]]] = {m: {} for m in modes}
    try:
        for mode in modes:  # warm-up
            await load(handles[mode].base_url, 1, 1, args.max_tokens, 99, args.seeded)
        # the two modes alternate level by level (and which goes first), so drifting machine
        # load hits both alike
        for n, c in enumerate(args.clients):
            total = max(args.min_requests, 2 * c)
            for mode in modes if n % 2 == 0 else modes[::-1]:
                res = await load(handles[mode].base_url, c, total, args.max_tokens, c, args.seeded)
                texts[mode][c] = res.pop("_texts")
                out[mode][str(c)] = res
                print(f"{mode} clients={c}: {res}", file=sys.stderr, flush=True)
        for mode in modes:
            st = handles[mode].runner.app[BATCHER].stats
            out[mode]["batches"] = {
                "agenerate_calls": st.calls,
                "prompts": st.prompts,
                "largest": st.max_batch,
            }
    finally:
        for h in handles.values():
            await h.stop()
    gain = {}
    for c in args.clients:
        b, s = out["batched"][str(c)], out["one_at_a_time"][str(c)]
        gain[str(c)] = {
            "throughput_x": round(b["requests_per_s"] / s["requests_per_s"], 2),
            "p50_latency_x": round(s["latency_p50_s"] / b["latency_p50_s"], 2),
        }
    out_d: dict[str, Any] = {"results": out, "batching_gain": gain}
    if args.seeded:
        pairs = [
            (texts["batched"][c][i], texts["one_at_a_time"][c][i])
            for c in args.clients
            for i in texts["batched"][c]
        ]
        out_d["identical_answers"] = round(sum(a == b for a, b in pairs) / len(pairs), 3)
    return out_d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", help="serve this run (default: shipped SmolLM2 + MiniLM value model)")
    ap.add_argument("--db", help="store of --run")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--min-requests", type=int, default=8, help="requests per level at least")
    ap.add_argument("--w", type=int, default=2)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--l", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--tmp", default="/tmp")
    ap.add_argument("--seeded", action="store_true", help="give every request its own seed")
    args = ap.parse_args()
    import torch

    t0 = time.perf_counter()
    policy = build_policy(args)
    load_s = time.perf_counter() - t0
    result = asyncio.run(bench(policy, args))
    report = {
        "benchmark": "serve",
        "policy": "run " + args.run
        if args.run
        else "SmolLM2-135M-Instruct (hf, cpu) + MiniLM value model",
        "search": {"w": args.w, "k": args.k, "l": args.l, "max_tokens": args.max_tokens},
        "seeded_requests": args.seeded,
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
        },
        "load_seconds": round(load_s, 1),
        **result,
        "latency_note": "seconds per request, client side, including queueing",
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
