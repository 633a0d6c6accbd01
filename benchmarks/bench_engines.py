"""Rollout throughput of the three ways to run the policy, side by side in one run: generated
tokens per second of the `sample` search (n whole answers per prompt, every prompt in flight) on
the shipped SmolLM2-135M-Instruct.

    .venv/bin/python benchmarks/bench_engines.py [--prompts 16] [--n 8] [--max-tokens 64]
        [--engines hf,vllm,llama] [--repeats 2] [--threads 2]

hf     the hf provider (transformers, fp32, batched decoding with a KV cache), torch --threads;
vllm   the vllm provider (vLLM's CPU build in its own process, .venv-vllm), fp32;
llama  the openai provider against llama-cpp-python's server (the GGUF file as shipped, Q4_1,
       --threads threads; the server ignores `n`, so every sample is its own request).
Engine start-up is outside every timing. Engines run one after another in each round (rounds
alternate the order) so machine drift hits all; figures are tokens/s over all rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL = "smollm2-135m-instruct"
TOPICS = ["a lighthouse keeper", "a rainy Monday", "a lost umbrella", "a city at night",
          "a garden in winter", "an old train", "a quiet library", "a mountain village"]  # fmt: skip


def examples(n: int):
    from iro_blackbox.dataset import Example

    return [
        Example(id=f"p{i}", prompt=[{"role": "user", "content": f"Write a story about {t}."}])
        for i, t in enumerate((TOPICS * (n // len(TOPICS) + 1))[:n])
    ]


def start_llama(threads: int) -> tuple[subprocess.Popen, str]:
    from iro_blackbox.models import resolve_model

    rm = resolve_model(MODEL)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(Path(rm.path) / rm.gguf_file),
         "--model_alias", MODEL, "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
         "--n_threads", str(threads), "--verbose", "false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    for _ in range(600):
        try:
            with urllib.request.urlopen(base + "/models", timeout=2) as r:
                if r.status == 200:
                    return proc, base
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("llama server did not start")


async def timed(exs, provider, params) -> tuple[float, int]:
    from iro_blackbox.registry import SEARCHES

    t0 = time.perf_counter()
    res = await SEARCHES.get("sample")(exs, provider, None, params)
    return time.perf_counter() - t0, sum(r.usage.completion_tokens for r in res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=16, help="prompts per round")
    ap.add_argument("--n", type=int, default=8, help="samples per prompt")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--engines", default="hf,vllm,llama")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--vllm-python", default=os.environ.get("IRO_VLLM_PYTHON")
                    or str(ROOT / ".venv-vllm" / "bin" / "python"))  # fmt: skip
    args = ap.parse_args()

    import torch

    from iro_blackbox.params import SamplingParams
    from iro_blackbox.search import SearchParams

    torch.set_num_threads(args.threads)
    engines = args.engines.split(",")
    providers, startup, cleanup = {}, {}, []
    for e in engines:
        t0 = time.perf_counter()
        if e == "hf":
            from iro_blackbox.providers.hf import HFProvider

            providers[e] = HFProvider(MODEL)
        elif e == "vllm":
            from iro_blackbox.providers.vllm import VLLMProvider

            p = VLLMProvider(MODEL, python=args.vllm_python, dtype="float32", max_model_len=2048)
            asyncio.run(p.prepare())
            providers[e] = p
        elif e == "llama":
            from iro_blackbox.providers.openai import OpenAIProvider

            proc, base = start_llama(args.threads)
            cleanup.append(proc)
            providers[e] = OpenAIProvider(
                MODEL, base_url=base, api_key="none", cache=False, mode="completions",
                tokenizer=MODEL, concurrency=4,
            )  # fmt: skip
        else:
            raise SystemExit(f"unknown engine {e!r}")
        startup[e] = round(time.perf_counter() - t0, 1)

    exs = examples(args.prompts)

    def params(seed: int) -> SearchParams:
        return SearchParams(w=args.n, k=1, l=args.max_tokens, max_tokens=args.max_tokens,
                            concurrency=args.prompts,
                            sampling=SamplingParams(temperature=1.0, seed=seed))  # fmt: skip

    seconds = {e: 0.0 for e in engines}
    tokens = {e: 0 for e in engines}
    try:
        for e in engines:  # warm-up, untimed
            asyncio.run(timed(exs[:2], providers[e], params(0)))
        for r in range(args.repeats):
            for e in engines if r % 2 == 0 else engines[::-1]:
                s, n = asyncio.run(timed(exs, providers[e], params(100 + r)))
                seconds[e] += s
                tokens[e] += n
                print(json.dumps({"engine": e, "round": r, "seconds": round(s, 1), "tokens": n}),
                      file=sys.stderr, flush=True)  # fmt: skip
    finally:
        for p in providers.values():
            asyncio.run(p.aclose())
        for proc in cleanup:
            proc.kill()
    tps = {e: round(tokens[e] / seconds[e], 1) for e in engines if seconds[e]}
    fastest = max(tps, key=tps.get)
    print(json.dumps({
        "model": MODEL, "prompts": args.prompts, "n": args.n, "max_tokens": args.max_tokens,
        "threads": args.threads, "repeats": args.repeats, "startup_s": startup,
        "tokens": tokens, "seconds": {e: round(s, 1) for e, s in seconds.items()},
        "tokens_per_s": tps, "fastest": fastest,
        "over_hf": {e: round(v / tps["hf"], 2) for e, v in tps.items()} if "hf" in tps else None,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
