"""--rpm / --tpm against a loopback OpenAI-compatible server (tests/_fx_api.py): the limiter paces
requests and slows every caller after a 429, counted at the server and in the limiter's accounting
with an injected clock (no wall-clock thresholds); and prices computed by genai-prices for each
response's usage (tiers applied), unless the user gives flat ones."""

from __future__ import annotations

import asyncio

import pytest
from _fx_api import FakeOpenAIServer

from iro_blackbox.errors import ConfigError
from iro_blackbox.iro.config import AlignConfig
from iro_blackbox.params import SamplingParams
from iro_blackbox.providers import build_provider
from iro_blackbox.providers.base import Extend
from iro_blackbox.providers.openai.pricing import parse_prices
from iro_blackbox.providers.openai.provider import OpenAIProvider
from iro_blackbox.providers.openai.ratelimit import MIN_FACTOR, RECOVER, RateLimiter
from iro_blackbox.providers.options import ProviderOptions

GREEDY = SamplingParams(temperature=0.0)


class Clock:
    """An injected clock and sleep: sleeping moves the clock, nothing waits. Each sleep records
    how long and how many requests the server had seen by then."""

    def __init__(self, server: FakeOpenAIServer | None = None) -> None:
        self.now = 0.0
        self.server = server
        self.sleeps: list[tuple[float, int]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append((seconds, self.server.count() if self.server else 0))
        self.now += seconds
        await asyncio.sleep(0)


def provider(server: FakeOpenAIServer, clock: Clock, **kw) -> OpenAIProvider:
    return OpenAIProvider("fake-model", base_url=server.base_url, mode="completions", timeout=5,
                          sleep=clock.sleep, clock=clock, **kw)  # fmt: skip


def one_by_one(p: OpenAIProvider, prompts: list[str]) -> list[str]:
    async def go() -> list[str]:
        try:
            return [(await p.extend([Extend(x, max_tokens=2, params=GREEDY)]))[0][0].text
                    for x in prompts]  # fmt: skip
        finally:
            await p.aclose()

    return asyncio.run(go())


def test_rpm_lets_a_minutes_burst_through_then_paces_at_the_server(fake_api):
    clock = Clock(fake_api)
    p = provider(fake_api, clock, rpm=3)
    out = one_by_one(p, [f"prompt {i}" for i in range(6)])
    assert len(out) == 6 and fake_api.count("/completions") == 6
    # three at once (a minute's allowance), then one per 20 s: the server had seen 3, 4, 5
    assert [s for s, _ in clock.sleeps] == pytest.approx([20.0, 20.0, 20.0])
    assert [seen for _, seen in clock.sleeps] == [3, 4, 5]
    lim = p.rate_limiter
    assert lim.granted == 6 and lim.waited == pytest.approx(60.0) and lim.throttled == 0


def test_a_429_slows_the_limiter_and_answers_recover_it(fake_api):
    clock = Clock(fake_api)
    p = provider(fake_api, clock, rpm=60)
    fake_api.fail_next(("status", 429, {"Retry-After": "5"}))
    out = one_by_one(p, ["hello", "again"])
    assert len(out) == 2 and fake_api.count("/completions") == 3  # the 429, its retry, "again"
    lim = p.rate_limiter
    assert lim.throttled == 1
    # halved by the 429, then 1/16 won back by each of the two answers
    assert lim.rates["rpm"] == pytest.approx(60 * (0.5 + 2 * RECOVER))
    # the request that got the 429 waited its Retry-After once (its own backoff), not twice
    assert [s for s, _ in clock.sleeps] == [5.0]
    assert p.stats.retries == 1


def test_after_a_429_every_caller_waits_out_the_retry_after():
    clock = Clock()
    lim = RateLimiter(rpm=60, clock=clock, sleep=clock.sleep)

    async def go() -> None:
        await lim.acquire()
        lim.throttle(5.0)  # another request got a 429 with Retry-After: 5; the bucket is emptied
        await lim.acquire()  # this one has to wait it out too (5 s at half rate refill 2.5)
        await lim.acquire(retrying=True)  # the one that got it: its backoff waited already
        await lim.acquire()  # 0.5 left, 0.5 more at half the rate (0.5 a second): 1 s

    asyncio.run(go())
    assert [s for s, _ in clock.sleeps] == pytest.approx([5.0, 1.0])
    assert lim.granted == 4 and lim.factor == pytest.approx(0.5)


def test_429s_never_bring_the_rate_below_its_floor_nor_recovery_above_the_given():
    clock = Clock()
    lim = RateLimiter(rpm=60, tpm=6000, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        lim.throttle(None)
    assert lim.rates == {"rpm": 60 * MIN_FACTOR, "tpm": 6000 * MIN_FACTOR}
    for _ in range(40):
        lim.settle(100, 100)
    assert lim.rates == {"rpm": 60.0, "tpm": 6000.0}
    # without limits a 429 still makes everyone wait, and nothing else changes
    free = RateLimiter(clock=clock, sleep=clock.sleep)
    free.throttle(3.0)
    asyncio.run(free.acquire())
    assert clock.sleeps[-1][0] == pytest.approx(3.0) and free.rates == {"rpm": None, "tpm": None}


def test_tpm_is_corrected_by_the_real_usage():
    clock = Clock()
    lim = RateLimiter(tpm=1000, clock=clock, sleep=clock.sleep)

    async def go() -> None:
        for _ in range(10):
            await lim.acquire(100)  # the whole minute's allowance, estimated
            lim.settle(100, 10)  # each used a tenth of it: 90 tokens come back
        await lim.acquire(100)  # room is left: no wait

    asyncio.run(go())
    assert clock.sleeps == [] and lim.granted == 11


def test_rpm_and_tpm_options_reach_the_provider(fake_api):
    opts = ProviderOptions(provider="openai", model="m", base_url=fake_api.base_url, rpm=30,
                           tpm=5000)  # fmt: skip
    p = build_provider(opts)
    assert (p.rate_limiter.rpm, p.rate_limiter.tpm) == (30, 5000)
    asyncio.run(p.aclose())
    # stored with a run's options, not part of what identifies it
    base = {
        "data": "train.jsonl",
        "provider": "openai",
        "model": "m",
        "base_url": fake_api.base_url,
    }
    limited = AlignConfig.from_dict({**base, "rpm": 30, "tpm": 5000})
    assert limited.provider.rpm == 30 and limited.to_dict()["tpm"] == 5000
    assert limited.identity() == AlignConfig.from_dict(base).identity()
    for bad in ({"rpm": 0}, {"tpm": -5}, {"rpm": 1.5}):
        with pytest.raises(ConfigError, match=f"{next(iter(bad))} must be an integer >= 1"):
            AlignConfig.from_dict({**base, **bad})


def test_rate_options_in_the_cli_are_one_line_errors(tmp_path, capsys):
    from iro_blackbox.cli.app import main

    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "x"}\n')
    db = str(tmp_path / "s.db")
    for argv in (
        ["generate", str(prompts), "--run", "r", "-o", str(tmp_path / "o.jsonl"), "--rpm", "0"],
        ["eval", str(prompts), "--run", "r", "--tpm", "0"],
        ["serve", "--run", "r", "--rpm", "0"],
    ):
        code = main([*argv, "--db", db])
        err = capsys.readouterr().err
        assert code == 2 and "must be an integer >= 1" in err and "Traceback" not in err, err
    for cmd in ("align", "generate", "eval", "serve"):
        assert main([cmd, "--help"]) == 0
        out = capsys.readouterr().out
        assert "--rpm" in out and "--tpm" in out, cmd


# --------------------------------------------------------------------------- prices


def test_a_tiered_price_is_genai_prices_own_calculation_per_response():
    from genai_prices import Usage, calc_price

    url = "https://generativelanguage.googleapis.com/v1beta/openai"
    p = parse_prices(None, "gemini-2.5-pro", url)
    assert p.source == "genai-prices" and p.prompt == pytest.approx(1.25)  # first tier, shown
    short, long_ = p.cost(1000, 100), p.cost(300_000, 100)
    exact = calc_price(Usage(input_tokens=300_000, output_tokens=100), "gemini-2.5-pro",
                       provider_api_url=url)  # fmt: skip
    assert long_ == pytest.approx(float(exact.total_price))
    # past 200k prompt tokens the tier costs more than the first tier's rate would say
    assert long_ > (300_000 * p.prompt + 100 * p.completion) / 1e6 * 1.5
    assert short == pytest.approx((1000 * 1.25 + 100 * 10.0) / 1e6)


def test_user_prices_stay_flat_and_loopback_stays_free():
    user = parse_prices({"prompt": 2.0, "completion": 8.0}, "gemini-2.5-pro",
                        "https://generativelanguage.googleapis.com/v1beta/openai")  # fmt: skip
    assert user.source == "user" and user.cost(300_000, 100) == pytest.approx(0.6 + 0.0008)
    free = parse_prices(None, "gpt-4o-mini", "http://127.0.0.1:8000/v1")
    assert free.source == "loopback (free)" and free.cost(10**6, 10**6) == 0.0
