"""How close the estimate `align` prints before its first request comes to what the run then
sends, on two runs of different sizes through a real OpenAI-compatible server.

    .venv/bin/python benchmarks/bench_estimate.py [--base-url URL]

Without --base-url it starts llama-cpp-python's server on the shipped SmolLM2 (127.0.0.1, a free
port). Each run is a fresh store (so nothing replays from a cache): `align --dry-run` before anything is
known of the endpoint (an upper bound: one request per sample), the probe (`iro-bb probe`), the
estimate `align` then prints, and the run itself, whose spending the store records. Prints JSON: for each run the
estimated and actual requests, input and output tokens, and actual / estimated (target: within
15%, i.e. 0.85 to 1.15).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TOPICS = ["a rainy Monday", "a queue at the post office", "a delayed train", "the laundry",
          "a broken umbrella", "a flat tyre", "a cold coffee", "a missed bus", "a noisy neighbour",
          "a long meeting", "a lost key", "a burnt toast"]  # fmt: skip


@contextlib.contextmanager
def llama_server():
    from iro_blackbox.models import resolve_model

    rm = resolve_model("smollm2-135m-instruct")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(Path(rm.path) / rm.gguf_file),
           "--model_alias", "smollm2-135m-instruct", "--host", "127.0.0.1", "--port", str(port),
           "--logits_all", "true", "--n_ctx", "2048", "--verbose", "false"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(360):
            try:
                with urllib.request.urlopen(base + "/models", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def one_run(base_url: str, n_train: int, n_eval: int, **opts) -> dict:
    from iro_blackbox import align

    d = Path(tempfile.mkdtemp(prefix="iro-bench-est-"))
    train, evals = d / "train.jsonl", d / "eval.jsonl"
    topics = (TOPICS * 4)[: n_train + n_eval]
    train.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"t{i}",
                    "messages": [
                        {"role": "user", "content": f"Write one or two sentences about {t}."}
                    ],
                }
            )
            + "\n"  # fmt: skip
            for i, t in enumerate(topics[:n_train])
        )
    )
    evals.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"e{i}",
                    "messages": [
                        {"role": "user", "content": f"Write one or two sentences about {t}."}
                    ],
                }
            )
            + "\n"  # fmt: skip
            for i, t in enumerate(topics[n_train:])
        )
    )
    common = dict(
        eval=str(evals), db=str(d / "s.db"), out=str(d / "run"), progress=False,
        provider="openai", base_url=base_url, model="smollm2-135m-instruct", **opts,
    )  # fmt: skip
    from iro_blackbox.providers.openai import probe_endpoint
    from iro_blackbox.store import open_store

    def figures(stage) -> dict:
        return {"requests": stage.requests, "input_tokens": stage.input_tokens,
                "output_tokens": stage.output_tokens}  # fmt: skip

    unprobed = align(train, dry_run=True, **common).estimate.total  # nothing known: upper bound
    probe_endpoint(base_url, "smollm2-135m-instruct", store=open_store(common["db"]))
    est = align(train, dry_run=True, **common).estimate.total  # what `align` prints
    t0 = time.perf_counter()
    res = align(train, **common)
    spent = res.spent
    out = {
        "train_prompts": n_train,
        "eval_prompts": n_eval,
        "options": opts,
        "seconds": round(time.perf_counter() - t0, 1),
        "estimated": figures(est),
        "estimated_before_the_probe": figures(unprobed),
        "actual": {k: int(spent.get(k, 0)) for k in ("requests", "input_tokens", "output_tokens")},
    }
    out["actual_over_estimated"] = {
        k: round(out["actual"][k] / max(1, out["estimated"][k]), 3) for k in out["actual"]
    }
    out["actual_over_estimated_before_the_probe"] = {
        k: round(out["actual"][k] / max(1, out["estimated_before_the_probe"][k]), 3)
        for k in out["actual"]
    }
    out["within_15_percent"] = all(0.85 <= r <= 1.15 for r in out["actual_over_estimated"].values())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", default=None)
    args = ap.parse_args()
    small = dict(iterations=1, w=2, k=2, l=8, max_tokens=16, value_epochs=1, seed=1)
    large = dict(iterations=2, w=2, k=3, l=8, max_tokens=24, value_epochs=1, seed=2,
                 guided_rollouts=2)  # fmt: skip
    with contextlib.ExitStack() as stack:
        base = args.base_url or stack.enter_context(llama_server())
        runs = [one_run(base, 4, 2, **small), one_run(base, 8, 4, **large)]
    print(json.dumps({"base_url": base, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
