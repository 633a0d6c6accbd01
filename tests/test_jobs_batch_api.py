"""The Batch API path, through the official SDK's `client.files` / `client.batches`, against an
HTTP emulator of OpenAI's /v1/files and /v1/batches (tests/_fx_batch.py) whose lines are answered
by the real llama-cpp-python server: the prefetched samples land in the request cache under the
openai provider's own keys (the provider then sends zero requests and gets the same text as live),
a batch that expires half done keeps what it answered and only the rest is sent again, and a
prefetch resumes its batch after a cancel, survives rejected lines, and reports a failed batch
clearly."""

from __future__ import annotations

import asyncio

import pytest
from _fx_batch import with_batch_api

from iro_blackbox.errors import Cancelled, ConfigError, PermanentError
from iro_blackbox.params import SamplingParams
from iro_blackbox.providers.base import Extend
from iro_blackbox.providers.openai.batch import BatchReport, plan_lines, prefetch
from iro_blackbox.providers.openai.provider import OpenAIProvider

pytestmark = pytest.mark.slow
MODEL = "smollm2-135m-instruct"


def requests(seed=11, n=2):
    p = SamplingParams(temperature=1.0, seed=seed)
    return [
        Extend(prompt="A rainy Monday is", n=n, max_tokens=6, params=p),
        Extend(
            prompt=[{"role": "user", "content": "Say something kind."}], n=n, max_tokens=6, params=p
        ),
    ]


async def with_fake(llama_server, fn):
    return await with_batch_api(llama_server.base_url, fn)


async def nosleep(_s):
    await asyncio.sleep(0)


def test_prefetch_fills_the_cache_the_provider_replays(llama_server, store):
    async def go(fake, url):
        reqs = requests()
        p = OpenAIProvider(MODEL, base_url=url, store=store)
        await p.probe()  # its few live requests (stored: once per endpoint) are not the batch's
        before = p.stats.completion_tokens
        seen = []
        report = await prefetch(p, reqs, poll_interval=0, sleep=nosleep, on_status=seen.append)
        assert (
            fake.created == 1
            and report.batches
            and report.statuses[report.batches[0]] == "completed"
        )
        assert report.samples == 4 and report.lines == 4  # llama.cpp ignores n: a line per sample
        assert report.ingested == 4 and report.failed_lines == 0 and fake.executed == 4
        assert {ln["url"] for ln in fake.uploaded_lines} == {"/v1/completions"}
        assert "in_progress" in {s["status"] for s in seen} and seen[-1]["done"] == 4
        assert (
            report.completion_tokens > 0
            and p.stats.completion_tokens - before == report.completion_tokens
        )
        live_before = fake.live
        # a fresh provider on the same store replays everything: zero requests
        p2 = OpenAIProvider(MODEL, base_url=url, store=store)
        chunks = await p2.extend(reqs)
        assert fake.live == live_before and p2.stats.requests == 0
        assert all(c.cached for row in chunks for c in row) and p2.stats.cache_hits == 4
        # ... and the text is what the live endpoint gives for the same requests
        live = OpenAIProvider(MODEL, base_url=llama_server.base_url, store=None)
        fresh = await live.extend(reqs)
        assert [[c.text for c in r] for r in chunks] == [[c.text for c in r] for r in fresh]
        await live.aclose()
        # nothing left to fetch: no second batch
        again = await prefetch(p2, reqs, poll_interval=0, sleep=nosleep)
        assert again.lines == 0 and again.already_cached == 4 and fake.created == 1
        for prov in (p, p2):
            await prov.aclose()

    asyncio.run(with_fake(llama_server, go))


def test_resume_after_cancel_expiry_and_rejected_lines(llama_server, store):
    async def go(fake, url):
        p = OpenAIProvider(MODEL, base_url=url, store=store)
        reqs = requests(seed=5, n=3)
        # cancelled while waiting: the batch keeps running remotely and is picked up again
        fake.polls_before_done = 3
        with pytest.raises(Cancelled, match="keeps running remotely"):
            await prefetch(p, reqs, poll_interval=0, sleep=nosleep, cancel_check=lambda: True)
        assert fake.created == 1 and fake.executed == 0
        fake.expire_after = 2  # ... and then expires after two of its six lines
        lines = await plan_lines(p, reqs, BatchReport())
        fake.fail_ids = {lines[-1].custom_id}  # the API rejects one line
        report = await prefetch(p, reqs, poll_interval=0, sleep=nosleep)
        assert report.resumed == 1 and fake.created == 2  # resumed the first, then one more
        statuses = list(report.statuses.values())
        assert statuses == ["expired", "completed"]
        assert report.ingested == 5 and report.failed_lines >= 1
        assert any("injected failure" in e for e in report.errors)
        # the provider fetches just the rejected sample live
        live_before = fake.live
        chunks = await p.extend(reqs)
        assert fake.live == live_before + 1
        assert sum(c.cached for row in chunks for c in row) == 5
        await p.aclose()

    asyncio.run(with_fake(llama_server, go))


def test_failed_batch_and_bad_uses_are_clear(llama_server, store):
    async def go(fake, url):
        p = OpenAIProvider(MODEL, base_url=url, store=store)
        fake.fail_validation = True
        with pytest.raises(PermanentError, match="failed: invalid_request: bad line 1"):
            await prefetch(p, requests(seed=99), poll_interval=0, sleep=nosleep)
        with pytest.raises(ConfigError, match="whole-response requests only"):
            await prefetch(p, [Extend(prompt="x", prefix="so far", max_tokens=4)], sleep=nosleep)
        nocache = OpenAIProvider(MODEL, base_url=url, store=None)
        with pytest.raises(ConfigError, match="needs a store"):
            await prefetch(nocache, requests(), sleep=nosleep)
        for prov in (p, nocache):
            await prov.aclose()

    asyncio.run(with_fake(llama_server, go))


def test_a_batch_that_expires_half_done_keeps_its_answers_and_resends_only_the_rest(
    llama_server, store
):
    async def go(fake, url):
        reqs = requests(seed=21, n=2)
        p = OpenAIProvider(MODEL, base_url=url, store=store)
        await p.probe()  # llama.cpp ignores n: one line per sample
        fake.expire_after = 2  # the first batch expires with 2 of its 4 lines answered
        report = await prefetch(p, reqs, poll_interval=0, sleep=nosleep)
        assert list(report.statuses.values()) == ["expired", "completed"]
        first, second = fake.uploads
        assert len(first) == 4 and fake.created == 2
        answered = {ln["custom_id"] for ln in first[:2]}
        # the second batch holds exactly the lines the first never reached, nothing answered
        assert {ln["custom_id"] for ln in second} == {ln["custom_id"] for ln in first[2:]}
        assert not answered & {ln["custom_id"] for ln in second}
        assert fake.executed == 4  # every line ran once against the llama server
        assert report.lines == 6 and report.expired_lines == 2 and report.failed_lines == 0
        assert report.ingested == 4 and report.errors == []
        # all four samples replay with no live request, and they are the llama server's text
        live_before = fake.live
        again = OpenAIProvider(MODEL, base_url=url, store=store)
        chunks = await again.extend(reqs)
        assert fake.live == live_before and again.stats.requests == 0
        assert all(c.cached for row in chunks for c in row)
        direct = OpenAIProvider(MODEL, base_url=llama_server.base_url, store=None)
        fresh = await direct.extend(reqs)
        assert [[c.text for c in r] for r in chunks] == [[c.text for c in r] for r in fresh]
        for prov in (p, again, direct):
            await prov.aclose()

    asyncio.run(with_fake(llama_server, go))
