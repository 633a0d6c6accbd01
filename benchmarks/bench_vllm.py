"""The vllm provider against the hf provider on the same model and rows, and a chunk-level beam
search through vllm against plain sampling of the same number of tokens through vllm, side by
side in one run.

    .venv/bin/python benchmarks/bench_vllm.py [--prompts 8] [--n 8] [--max-tokens 64]
        [--w 2 --k 4 --l 16] [--repeats 3] [--vllm-python .venv-vllm/bin/python]

sample_hf / sample_vllm: the `sample` search (n whole answers of max_tokens per prompt, all
    prompts in flight at once) on the hf provider and on the vllm provider (fp32 both, the shipped
    SmolLM2).
plain_vllm / cbs_vllm: on vllm, plain sampling of W*K answers per prompt against the `cbs` search
    with W, K, L (every step extends the live beams by K chunks of L tokens, a MiniLM value model
    scores the prefixes, W are kept). Both are reported per generated token, so the ratio says what
    the search costs over sampling the same tokens.
Kinds run alternately for `repeats` rounds so machine drift hits all; figures are medians with min
and max. Engine start-up (tens of seconds on CPU) is outside every timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
TOPICS = ["a lighthouse keeper", "a rainy Monday", "a lost umbrella", "a city at night",
          "a garden in winter", "an old train", "a quiet library", "a mountain village"]  # fmt: skip


def examples(n: int):
    from iro_blackbox.dataset import Example

    return [
        Example(id=f"p{i}", prompt=[{"role": "user", "content": f"Write a story about {t}."}])
        for i, t in enumerate((TOPICS * (n // len(TOPICS) + 1))[:n])
    ]


async def timed(name: str, exs, provider, scorer, params) -> tuple[float, int]:
    from iro_blackbox.registry import SEARCHES

    t0 = time.perf_counter()
    res = await SEARCHES.get(name)(exs, provider, scorer, params)
    return time.perf_counter() - t0, sum(r.usage.completion_tokens for r in res)


def spread(xs: list[float], digits: int = 4) -> dict[str, float]:
    return {"median": round(statistics.median(xs), digits), "min": round(min(xs), digits),
            "max": round(max(xs), digits)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=8, help="rows per run")
    ap.add_argument("--n", type=int, default=8, help="samples per prompt (sample_hf / sample_vllm)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--w", type=int, default=2)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--l", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--vllm-python", default=os.environ.get("IRO_VLLM_PYTHON")
                    or str(ROOT / ".venv-vllm" / "bin" / "python"))  # fmt: skip
    args = ap.parse_args()
    if not Path(args.vllm_python).exists():
        sys.exit(f"no vLLM Python at {args.vllm_python}: run `bash scripts/setup.sh all`")

    from iro_blackbox.params import SamplingParams
    from iro_blackbox.providers.hf import HFProvider
    from iro_blackbox.providers.vllm import VLLMProvider
    from iro_blackbox.search import CombinedScorer, SearchParams
    from iro_blackbox.value import ValueConfig, ValueModel

    hf = HFProvider(args.model)
    vllm = VLLMProvider(args.model, python=args.vllm_python, dtype="float32", max_model_len=2048)
    t0 = time.perf_counter()
    asyncio.run(vllm.prepare())
    startup = time.perf_counter() - t0
    vm = ValueModel.from_config(ValueConfig(backbone="minilm-l6"))
    exs = examples(args.prompts)

    def params(seed: int, n: int, **kw) -> SearchParams:
        return SearchParams(w=kw.get("w", n), k=kw.get("k", 1), l=kw.get("l", args.max_tokens),
                            max_tokens=args.max_tokens, concurrency=max(8, args.prompts),
                            sampling=SamplingParams(temperature=1.0, seed=seed))  # fmt: skip

    wk = args.w * args.k
    kinds = {
        "sample_hf": lambda s: timed("sample", exs, hf, None, params(s, args.n)),
        "sample_vllm": lambda s: timed("sample", exs, vllm, None, params(s, args.n)),
        "plain_vllm": lambda s: timed("sample", exs, vllm, None, params(s, wk)),
        "cbs_vllm": lambda s: timed(
            "cbs", exs, vllm, CombinedScorer([vm]), params(s, wk, w=args.w, k=args.k, l=args.l)
        ),  # fmt: skip
    }
    for run in kinds.values():  # warm-up
        asyncio.run(run(0))
    per_token: dict[str, list[float]] = {k: [] for k in kinds}
    seconds: dict[str, list[float]] = {k: [] for k in kinds}
    tokens: dict[str, list[int]] = {k: [] for k in kinds}
    ratio_engine, ratio_cbs = [], []
    for r in range(args.repeats):
        for kind, run in kinds.items():
            s, n = asyncio.run(run(100 + r))
            seconds[kind].append(s)
            tokens[kind].append(n)
            per_token[kind].append(s / max(n, 1))
        ratio_engine.append(per_token["sample_vllm"][-1] / per_token["sample_hf"][-1])
        ratio_cbs.append(per_token["cbs_vllm"][-1] / per_token["plain_vllm"][-1])
    asyncio.run(vllm.aclose())
    print(json.dumps({
        "model": args.model, "prompts": args.prompts, "n": args.n, "max_tokens": args.max_tokens,
        "w": args.w, "k": args.k, "l": args.l, "repeats": args.repeats,
        "vllm_startup_s": round(startup, 1),
        "seconds": {k: spread(v, 3) for k, v in seconds.items()},
        "tokens": {k: spread(v, 0) for k, v in tokens.items()},
        "tokens_per_s": {k: round(sum(tokens[k]) / sum(seconds[k]), 1) for k in kinds},
        "vllm_over_hf_s_per_token": spread(ratio_engine, 3),
        "cbs_over_plain_s_per_token_on_vllm": spread(ratio_cbs, 3),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
