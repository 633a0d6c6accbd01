"""API provider throughput and cache replay speed (prints JSON).

A fake OpenAI-compatible server (tests/_fx_api.py) runs in its own process and answers every
request after a fixed latency (default 200 ms). For concurrency 1, 8 and 32 the provider sends
`rounds * concurrency` distinct requests (each cached in a real SQLite store, as in a run); the
measured requests/s is compared with the ideal concurrency / latency (target >= 0.9 of ideal).
Then a new provider replays a cached batch from the same store: cached chunks per second, and the
number of HTTP requests it made (must be 0).

    .venv/bin/python benchmarks/bench_api_provider.py [--latency 0.2] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from iro_blackbox.params import SamplingParams  # noqa: E402
from iro_blackbox.providers.base import Extend  # noqa: E402
from iro_blackbox.providers.openai.provider import OpenAIProvider  # noqa: E402
from iro_blackbox.store import open_store  # noqa: E402

SERVER = """
import sys, time
sys.path.insert(0, {tests!r})
from _fx_api import FakeOpenAIServer
s = FakeOpenAIServer(latency={latency!r}).start()
print(s.base_url, flush=True)
sys.stdin.read()
"""


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    code = SERVER.format(tests=str(ROOT / "tests"), latency=latency)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    base_url = proc.stdout.readline().strip()
    if not base_url.startswith("http"):
        proc.kill()
        raise RuntimeError("fake server did not start")
    return proc, base_url


def requests_for(tag: str, count: int, n: int = 1) -> list[Extend]:
    return [
        Extend(
            f"{tag} prompt {i}: write something",
            prefix=" Once",
            n=n,
            max_tokens=16,
            params=SamplingParams(temperature=1.0, seed=i),
        )
        for i in range(count)
    ]


async def timed_extend(provider: OpenAIProvider, reqs: list[Extend]) -> tuple[float, int]:
    try:
        t0 = time.perf_counter()
        out = await provider.extend(reqs)
        dt = time.perf_counter() - t0
    finally:
        await provider.aclose()
    return dt, sum(len(row) for row in out)


async def raw_client(base_url: str, reqs: list[Extend], concurrency: int) -> float:
    """The ceiling on this machine right now: bare aiohttp POSTs, same bodies, same concurrency,
    no provider (no retries, cache, parsing into chunks)."""
    import aiohttp

    sem = asyncio.Semaphore(concurrency)
    bodies = [
        {"model": "bench", "prompt": r.prompt + r.prefix, "max_tokens": r.max_tokens, "seed": i}
        for i, r in enumerate(reqs)
    ]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(body: dict) -> None:
            async with sem, session.post(base_url + "/completions", json=body) as resp:
                await resp.json()

        t0 = time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies))
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--latency", type=float, default=0.2, help="server latency per request, s")
    ap.add_argument("--rounds", type=int, default=10, help="requests per concurrency slot")
    ap.add_argument("--replay", type=int, default=2000, help="cached chunks to replay")
    args = ap.parse_args()

    proc, base_url = start_server(args.latency)
    tmp = tempfile.TemporaryDirectory()
    store = open_store(str(Path(tmp.name) / "bench.db"))
    report: dict = {
        "latency_s": args.latency,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "load_average_1min_before": round(os.getloadavg()[0], 2),
        "throughput": [],
    }
    try:
        # warm-up: connection set-up, imports, first SQLite writes
        warm = OpenAIProvider("bench", base_url=base_url, store=store, mode="completions")
        asyncio.run(timed_extend(warm, requests_for("warm", 4)))
        for c in (1, 8, 32):
            p = OpenAIProvider(
                "bench", base_url=base_url, store=store, mode="completions", concurrency=c
            )
            reqs = requests_for(f"c{c}", c * args.rounds)
            dt, chunks = asyncio.run(timed_extend(p, reqs))
            rate = p.stats.requests / dt
            ideal = c / args.latency
            raw_dt = asyncio.run(raw_client(base_url, requests_for(f"raw{c}", c * args.rounds), c))
            raw_rate = c * args.rounds / raw_dt
            report["throughput"].append(
                {
                    "concurrency": c,
                    "requests": p.stats.requests,
                    "chunks": chunks,
                    "seconds": round(dt, 3),
                    "requests_per_s": round(rate, 2),
                    "ideal_requests_per_s": round(ideal, 2),
                    "ratio_to_ideal": round(rate / ideal, 3),
                    "target": 0.9,
                    "ok": rate / ideal >= 0.9,
                    "bare_aiohttp_requests_per_s": round(raw_rate, 2),
                    "ratio_to_bare_aiohttp": round(rate / raw_rate, 3),
                }
            )
        # cache replay: fill the cache with `replay` chunks (n=4 per request), then replay them
        per = 4
        reqs = requests_for("replay", max(1, args.replay // per), n=per)
        fill = OpenAIProvider(
            "bench", base_url=base_url, store=store, mode="completions", concurrency=64
        )
        fill_dt, _ = asyncio.run(timed_extend(fill, reqs))
        again = OpenAIProvider("bench", base_url=base_url, store=store, mode="completions")
        dt, chunks = asyncio.run(timed_extend(again, reqs))
        report["cache_replay"] = {
            "chunks": chunks,
            "seconds": round(dt, 4),
            "chunks_per_s": round(chunks / dt, 1),
            "http_requests": again.stats.requests,
            "cache_hits": again.stats.cache_hits,
            "fill_seconds": round(fill_dt, 3),
            "fill_requests": fill.stats.requests,
        }
    finally:
        store.close()
        tmp.cleanup()
        proc.stdin.close()  # type: ignore[union-attr]
        proc.terminate()
        proc.wait(10)
    report["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
