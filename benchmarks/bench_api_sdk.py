"""The openai provider's throughput before and after it moved onto the official `openai` SDK,
side by side in one run (prints JSON).

The provider package as it was before the change is checked out of git (`--before`, default: the
commit before the one that removed the hand-written aiohttp client providers/openai/http.py) into
a temporary folder; the working tree's package is "after". Each measurement is a fresh Python
process that imports one of the two and sends the same requests, the two versions alternating
(before, after, before, after, ...) so that a change in the machine's load falls on both, and
each pair sends the same prompts with the same seeds (the same work for the server):

- llama: the real llama-cpp-python server (SmolLM2-135M, started here), `--requests` distinct
  prompts of `--max-tokens` sampled tokens each (seeded), no cache. The server does the work, so
  this is what a run sees.
- fake: the fake OpenAI-compatible server of the tests (tests/_fx_api.py, in its own process)
  answering at once: what is left is the client's own cost per request (HTTP, JSON, parsing).

    .venv/bin/python benchmarks/bench_api_sdk.py [--requests 24] [--max-tokens 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import asyncio, json, sys, time
sys.path.insert(0, {path!r})
from iro_blackbox.params import SamplingParams
from iro_blackbox.providers.base import Extend
from iro_blackbox.providers.openai.provider import OpenAIProvider
import iro_blackbox.providers.openai.provider as mod

def reqs(tag, k):
    return [Extend(f"{{tag}} {{i}}: Write one sentence about the number {{i}}.", max_tokens={max_tokens},
                   params=SamplingParams(temperature=1.0, seed=i)) for i in range(k)]

async def main():
    p = OpenAIProvider({model!r}, base_url={base_url!r}, store=None, mode="completions",
                       concurrency={concurrency}, timeout=600)
    try:
        await p.extend(reqs("warm", 2))
        before = p.stats.snapshot()
        t0 = time.perf_counter()
        out = await p.extend(reqs({tag!r}, {requests}))
        dt = time.perf_counter() - t0
    finally:
        await p.aclose()
    print(json.dumps({{"seconds": dt, "requests": p.stats.requests - before["requests"],
        "completion_tokens": p.stats.completion_tokens - before["completion_tokens"],
        "retries": p.stats.retries, "chunks": sum(len(r) for r in out),
        "provider_file": mod.__file__, "openai_sdk_loaded": "openai" in sys.modules}}))

asyncio.run(main())
"""

FAKE = """
import sys
sys.path.insert(0, {tests!r})
from _fx_api import FakeOpenAIServer
s = FakeOpenAIServer().start()
print(s.base_url, flush=True)
sys.stdin.read()
"""


def git(*args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True).stdout


def before_rev() -> str:
    """The commit before the one that deleted providers/openai/http.py (the SDK change)."""
    gone = git("log", "-1", "--diff-filter=D", "--format=%H", "--",
               "iro_blackbox/providers/openai/http.py").decode().strip()  # fmt: skip
    if not gone:
        raise SystemExit("no commit removed providers/openai/http.py here: pass --before REV")
    return gone + "^"


def checkout(rev: str, into: Path) -> str:
    """The package `iro_blackbox` as of `rev`, extracted under `into`; the commit id."""
    sha = git("rev-parse", rev).decode().strip()
    with tarfile.open(fileobj=BytesIO(git("archive", sha, "iro_blackbox"))) as tar:
        tar.extractall(into, filter="data")
    return sha


@contextlib.contextmanager
def llama_server() -> Iterator[str]:
    sys.path.insert(0, str(ROOT))
    from iro_blackbox.models import resolve_model

    rm = resolve_model("smollm2-135m-instruct")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(Path(rm.path) / rm.gguf_file),
           "--model_alias", "smollm2-135m-instruct", "--host", "127.0.0.1", "--port", str(port),
           "--n_ctx", "2048", "--n_threads", "2", "--verbose", "false"]  # fmt: skip
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


@contextlib.contextmanager
def fake_server() -> Iterator[str]:
    code = FAKE.format(tests=str(ROOT / "tests"))
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.stdin.close()
        proc.terminate()
        proc.wait(10)


def measure(path: Path, base_url: str, model: str, tag: str, args: argparse.Namespace, k: int):
    code = WORKER.format(path=str(path), base_url=base_url, model=model, tag=tag, requests=k,
                         max_tokens=args.max_tokens, concurrency=args.concurrency)  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary(runs: list[dict]) -> dict:
    rps = [r["requests"] / r["seconds"] for r in runs]
    tps = [r["completion_tokens"] / r["seconds"] for r in runs]
    return {
        "requests_per_s_median": round(statistics.median(rps), 2),
        "requests_per_s_each": [round(x, 2) for x in rps],
        "completion_tokens_per_s_median": round(statistics.median(tps), 1),
        # sampled text can differ between two runs of the same seeded request on llama.cpp (its
        # logits depend on which prefix it reused), so the work is shown beside the rate
        "completion_tokens_per_request": round(
            sum(r["completion_tokens"] for r in runs) / sum(r["requests"] for r in runs), 2
        ),
        "requests": runs[0]["requests"],
        "retries": sum(r["retries"] for r in runs),
        "openai_sdk_loaded": runs[0]["openai_sdk_loaded"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", default=None, help="git revision of the 'before' provider")
    ap.add_argument("--requests", type=int, default=24, help="requests per llama measurement")
    ap.add_argument("--fake-requests", type=int, default=400, help="requests per fake measurement")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3, help="measurements per version and server")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="iro-bench-sdk-"))
    sha = checkout(args.before or before_rev(), tmp)
    versions = {"before": tmp, "after": ROOT}
    report: dict = {
        "before_commit": sha,
        "after": git("rev-parse", "HEAD").decode().strip()
        + (" (+ working tree)" if git("status", "--porcelain", "iro_blackbox") else ""),
        "requests": args.requests,
        "max_tokens": args.max_tokens,
        "concurrency": args.concurrency,
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "load_average_1min_before": round(os.getloadavg()[0], 2),
    }
    servers = (("llama", llama_server, "smollm2-135m-instruct", args.requests),
               ("fake", fake_server, "fake-model", args.fake_requests))  # fmt: skip
    for name, server, model, k in servers:
        runs: dict[str, list[dict]] = {v: [] for v in versions}
        with server() as base_url:
            for i in range(args.repeats):
                for v, path in versions.items():
                    # the same prompts and seeds for both: the server does the same work
                    r = measure(path, base_url, model, f"R{i}", args, k)
                    assert Path(r["provider_file"]).is_relative_to(path), r["provider_file"]
                    runs[v].append(r)
        s = {v: summary(rs) for v, rs in runs.items()}
        s["after_over_before"] = round(
            s["after"]["requests_per_s_median"] / s["before"]["requests_per_s_median"], 3
        )
        report[name] = s
    report["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
