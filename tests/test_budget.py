"""Budgets, prices and estimates: the pure parts fast (a fake endpoint of the tests' own), and
every bad input as one clear line before any request."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from _fx_api import FakeOpenAIServer

from iro_blackbox.errors import BudgetExceeded, ConfigError
from iro_blackbox.iro.config import AlignConfig
from iro_blackbox.iro.estimate import estimate
from iro_blackbox.providers.base import Extend
from iro_blackbox.providers.budget import Budget, BudgetGuard, MemoryLedger
from iro_blackbox.providers.openai import OpenAIProvider
from iro_blackbox.providers.openai.pricing import Prices, parse_prices


def test_guard_refuses_the_request_that_could_pass_a_limit():
    prices = Prices(1.0, 2.0, "user")  # USD per 1M
    ledger = MemoryLedger()
    g = BudgetGuard(Budget(max_cost_usd=0.0035), ledger, prices)
    h = g.reserve(1000, 500)  # worst case 0.001 + 0.001 = $0.002
    with pytest.raises(BudgetExceeded, match="--max-cost 0.0035"):
        g.reserve(1000, 500)  # another $0.002 in flight would pass $0.0035
    g.settle(h, 1000, 100)  # it cost $0.0012 in the end
    assert ledger.spent()["cost_usd"] == pytest.approx(0.0012) and ledger.spent()["requests"] == 1
    g.settle(g.reserve(1000, 500), 1000, 100)  # now it fits: 0.0012 + 0.002 <= 0.0035
    with pytest.raises(BudgetExceeded, match=r"spent so far \$0\.0024 in 2 requests"):
        g.reserve(1000, 500)
    # requests and output tokens, counted over attempts (a ledger that says what was spent)
    g2 = BudgetGuard(
        Budget(max_requests=2, max_output_tokens=150), MemoryLedger({"requests": 1}), prices
    )
    g2.settle(g2.reserve(10, 100), 10, 90)
    with pytest.raises(BudgetExceeded, match="--max-requests 2"):
        g2.reserve(10, 10)
    g3 = BudgetGuard(Budget(max_output_tokens=150), MemoryLedger({"output_tokens": 100}), prices)
    with pytest.raises(BudgetExceeded, match="--max-output-tokens 150"):
        g3.reserve(10, 64)
    g3.reserve(10, 50)


def test_exhausted_at_start_and_bad_limits():
    prices = Prices(1.0, 1.0, "user")
    with pytest.raises(BudgetExceeded, match="no room is left"):
        BudgetGuard(Budget(max_requests=0), MemoryLedger(), prices).check_start()
    with pytest.raises(BudgetExceeded, match="no room is left"):
        BudgetGuard(Budget(max_cost_usd=1.0), MemoryLedger({"cost_usd": 1.0}), prices).check_start()
    BudgetGuard(
        Budget(max_cost_usd=0.0), MemoryLedger(), Prices(0, 0, "loopback (free)")
    ).check_start()
    for bad in ({"max_cost_usd": -1}, {"max_cost_usd": "1"}, {"max_requests": 1.5}):
        with pytest.raises(ConfigError):
            Budget(**bad)


def test_prices_from_the_maintained_list_or_the_user():
    assert parse_prices(None, "gpt-4o-mini", "https://api.openai.com/v1").source == "genai-prices"
    ds = parse_prices(None, "deepseek-chat", "https://api.deepseek.com/beta")
    assert ds.source == "genai-prices" and ds.prompt > 0 and ds.completion > ds.prompt
    assert parse_prices(None, "anything", "http://127.0.0.1:8000/v1").source == "loopback (free)"
    assert not parse_prices(None, "my-own-model", "https://models.example.com/v1").known
    user = parse_prices({"prompt": 0.5, "completion": 1.5}, "my-own-model", "https://x.example/v1")
    assert (user.prompt, user.completion, user.source) == (0.5, 1.5, "user")
    with pytest.raises(ConfigError, match="prices.prompt must be a number"):
        parse_prices({"prompt": -1, "completion": 1}, "m", "https://x.example/v1")


def test_a_budget_stops_a_call_and_nothing_is_lost(store):
    """The request that would pass the limit is not sent; requests already in flight finish
    and reach the cache; a second call with a higher limit replays them and sends the rest."""
    srv = FakeOpenAIServer(n_honoured=False, latency=0.05).start()
    try:
        prices = Prices(1.0, 1.0, "user")
        ledger = MemoryLedger()

        def provider(limit):
            return OpenAIProvider(
                "fake-model",
                base_url=srv.base_url,
                store=store,
                mode="completions",
                concurrency=2,
                budget=BudgetGuard(Budget(max_requests=limit), ledger, prices),
            )

        reqs = [Extend(f"prompt {i}", n=3, max_tokens=4) for i in range(4)]  # 12 requests
        p = provider(5)
        with pytest.raises(BudgetExceeded, match="--max-requests 5"):
            asyncio.run(p.extend(reqs))
        asyncio.run(p.aclose())
        assert srv.count() == ledger.spent()["requests"] == 5
        p2 = provider(12)
        out = asyncio.run(p2.extend(reqs))
        asyncio.run(p2.aclose())
        assert srv.count() == 12 and ledger.spent()["requests"] == 12  # none paid twice
        assert p2.stats.cache_hits == 5 and all(len(row) == 3 for row in out)
    finally:
        srv.stop()


def test_estimate_counts_every_stage(tmp_path):
    cfg = AlignConfig.from_dict(
        {
            "data": "d.jsonl",
            "iterations": 2,
            "w": 2,
            "k": 3,
            "l": 4,
            "max_tokens": 8,
            "guided_rollouts": 4,
        }  # fmt: skip
    )
    from iro_blackbox.dataset import Example

    train = [Example(id=f"t{i}", prompt="x" * 40) for i in range(3)]
    evals = [Example(id=f"e{i}", prompt="y" * 40) for i in range(2)]
    for honoured in (True, False):
        est = estimate(
            cfg, train, evals, count=lambda p: 10, cost=lambda i, o: (i + 2 * o) / 1e6,
            n_honoured=honoured, probe_needed=False,
        )  # fmt: skip
        by = {s.name.split(":")[0]: s for s in est.stages}
        n = 6  # W*K
        base = by["t=0 base policy"]
        assert base.requests == (2 if honoured else 2 * n) and base.output_tokens == 2 * n * 8
        t1 = by["t=1 rollouts"]
        assert t1.output_tokens == 3 * n * 8 and t1.input_tokens == t1.requests * 10
        # a chunk-level search: 2 steps of W beams x K chunks of L tokens, 2 searches at t=2
        t2 = by["t=2 rollouts"]
        assert t2.output_tokens == 3 * 2 * (2 * 3 * 4 * 2)
        assert t2.requests == 3 * 2 * 2 * (2 if honoured else 6)
        assert est.total.cost_usd == pytest.approx(
            sum(s.input_tokens + 2 * s.output_tokens for s in est.stages) / 1e6
        )


def _cli(tmp_path, *args):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Say hi {i}."}) + "\n" for i in range(4)))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "iro_blackbox.cli.app",
            "align",
            str(data),
            "--db",
            str(tmp_path / "s.db"),
            "-q",
            *args,
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
    )


API = ["--provider", "openai", "--model", "m"]
BAD = [
    (["--api-mode", "fast"], "api_mode must be one of auto, token-ids"),
    (
        [*API, "--base-url", "http://127.0.0.1:9/v1", "--price-input", "-1", "--price-output", "1"],
        "price_input must be a number >= 0",
    ),  # fmt: skip
    ([*API, "--price-input", "cheap"], "Invalid value for '--price-input'"),
    (
        [*API, "--base-url", "http://127.0.0.1:9/v1", "--price-input", "1"],
        "give both --price-input and --price-output",
    ),  # fmt: skip
    ([*API, "--base-url", "http://127.0.0.1:9/v1", "--max-cost", "-0.5"], "max_cost must be"),
    (
        [*API, "--base-url", "https://models.example.invalid/v1"],
        "not in genai-prices' price list: give --price-input and --price-output",
    ),  # fmt: skip
    (
        [*API, "--base-url", "http://127.0.0.1:9/v1", "--max-requests", "0"],
        "budget reached (--max-requests 0): no room is left",
    ),  # fmt: skip
    (["--max-cost", "1"], "apply to API providers"),
]


@pytest.mark.parametrize("args,needle", BAD, ids=[b[1][:30] for b in BAD])
def test_bad_cost_and_mode_input_is_one_line_before_any_request(tmp_path, args, needle):
    r = _cli(tmp_path, *args)
    assert r.returncode != 0 and "Traceback" not in r.stderr + r.stdout, r.stderr
    assert needle in r.stderr, r.stderr
    assert len([x for x in r.stderr.splitlines() if x.startswith("error")]) == 1, r.stderr
    # nothing was asked of 127.0.0.1:9 (nothing listens there: a request would fail differently)
    assert "cannot reach" not in r.stderr
