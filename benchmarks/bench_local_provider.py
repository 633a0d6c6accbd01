"""Chunked generation through the `hf` provider versus one plain `generate` call, same model, same run.

    .venv/bin/python benchmarks/bench_local_provider.py [--rows 16] [--chunk 16] [--new-tokens 128]

Chunked: W*K = rows continuations of one prompt, extended `chunk` tokens at a time through
HFProvider.extend with KV handles, keeping every row at every step (what a chunk-level beam search
with all rows kept costs). Plain: one model.generate(num_return_sequences=rows,
max_new_tokens=new_tokens, do_sample=True) on the same model object. Both sample at temperature 1
with no top-k/top-p cut. The two are run alternately `repeats` times; medians are reported.
Both run in a worker thread (the provider runs its torch work through asyncio.to_thread; generate
is called the same way) so both see the same torch threading; `--threads` sets torch's threads
(on a shared, oversubscribed CPU one thread avoids OpenMP barrier stalls that swamp the figures).
Prints JSON: both times, the ratio chunked/plain (target <= 1.15) and tokens/s.
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

PROMPT = [{"role": "user", "content": "Write a long, detailed story about a lighthouse keeper."}]


async def chunked(provider, rows: int, chunk: int, new_tokens: int, seed: int) -> tuple[float, int]:
    from iro_blackbox.params import SamplingParams
    from iro_blackbox.providers.base import Extend

    params = SamplingParams(temperature=1.0, seed=seed)
    t0 = time.perf_counter()
    [first] = await provider.extend([Extend(PROMPT, n=rows, max_tokens=chunk, params=params)])
    texts = [c.text for c in first]
    handles = [c.handle for c in first]
    made = sum(len(c.tokens) for c in first)
    for _ in range(new_tokens // chunk - 1):
        reqs = [
            Extend(
                PROMPT,
                prefix=texts[i],
                n=1,
                max_tokens=chunk,
                params=params,
                sample_index=i,
                handle=handles[i],
            )  # fmt: skip
            for i in range(rows)
        ]
        out = await provider.extend(reqs)
        for i, [c] in enumerate(out):
            texts[i] += c.text
            handles[i] = c.handle
            made += len(c.tokens)
    return time.perf_counter() - t0, made


def plain(provider, rows: int, new_tokens: int, seed: int, threads: int) -> tuple[float, int]:
    import torch

    tok, model = provider.tokenizer, provider.model
    ids = torch.tensor([list(provider._enc.prompt_ids(PROMPT))], device=provider.device)
    eos = provider.tokenizer.eos_token_id
    torch.set_num_threads(threads)  # this worker thread follows the main thread's setting
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            num_return_sequences=rows,
            max_new_tokens=new_tokens,
            pad_token_id=tok.pad_token_id,
        )
    took = time.perf_counter() - t0
    new = out[:, ids.shape[1] :]
    made = 0
    for row in new.tolist():  # tokens up to (not including) the first EOS, like the chunked count
        made += row.index(eos) if eos in row else len(row)
    return took, made


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--rows", type=int, default=16, help="W*K rows")
    ap.add_argument("--chunk", type=int, default=16, help="chunk length L")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    nthreads = torch.get_num_threads()

    from iro_blackbox.providers.hf import HFProvider

    t0 = time.perf_counter()
    provider = HFProvider(args.model)
    load_s = time.perf_counter() - t0
    asyncio.run(chunked(provider, 2, 4, 8, seed=0))  # warm-up both paths
    asyncio.run(asyncio.to_thread(plain, provider, 2, 8, 0, nthreads))

    runs = {"chunked": [], "plain": []}
    made = {"chunked": [], "plain": []}
    for r in range(args.repeats):
        s, n = asyncio.run(chunked(provider, args.rows, args.chunk, args.new_tokens, seed=r))
        runs["chunked"].append(s)
        made["chunked"].append(n)
        s, n = asyncio.run(
            asyncio.to_thread(plain, provider, args.rows, args.new_tokens, r, nthreads)
        )
        runs["plain"].append(s)
        made["plain"].append(n)
        print(f"repeat {r}: chunked {runs['chunked'][-1]:.2f}s plain {s:.2f}s", file=sys.stderr)

    c, p = statistics.median(runs["chunked"]), statistics.median(runs["plain"])
    slots = args.rows * args.new_tokens
    print(
        json.dumps(
            {
                "model": provider.model_name,
                "device": provider.device,
                "dtype": str(provider.dtype).replace("torch.", ""),
                "torch_threads": torch.get_num_threads(),
                "rows": args.rows,
                "chunk": args.chunk,
                "new_tokens": args.new_tokens,
                "repeats": args.repeats,
                "load_s": round(load_s, 2),
                "chunked_s": round(c, 3),
                "plain_generate_s": round(p, 3),
                "ratio_chunked_over_plain": round(c / p, 3),
                "target_ratio": 1.15,
                "meets_target": c / p <= 1.15,
                "chunked_row_tokens_per_s": round(slots / c, 1),
                "plain_row_tokens_per_s": round(slots / p, 1),
                "chunked_tokens_before_eos": statistics.median(made["chunked"]),
                "plain_tokens_before_eos": statistics.median(made["plain"]),
                "all_runs_s": {k: [round(x, 3) for x in v] for k, v in runs.items()},
                "provider_stats": provider.stats.snapshot(),
                "kv": provider.cache_info(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
