"""The official openai client, unchanged, against `iro-bb serve` answering with real CBS: the shipped
SmolLM2-135M-Instruct guided by a MiniLM value model, on 127.0.0.1 with an API key."""

from __future__ import annotations

import asyncio

import openai
import pytest
from _fx_jobs import ServerThread

pytestmark = pytest.mark.slow

MODEL = "iro-test"


@pytest.fixture
def client(smollm2_server):
    return openai.OpenAI(base_url=smollm2_server.base_url, api_key="test-key", timeout=300)


def test_completions(client):
    r = client.completions.create(model=MODEL, prompt="A rainy Monday is", max_tokens=12, seed=1)
    text = r.choices[0].text
    assert isinstance(text, str) and text.strip()
    assert r.choices[0].finish_reason in ("stop", "length")
    assert 0 < r.usage.completion_tokens <= 12 and r.usage.prompt_tokens > 0


def test_chat_and_streaming_agree(client):
    kw = dict(
        model=MODEL,
        max_tokens=16,
        seed=7,
        messages=[{"role": "user", "content": "Describe a queue at the post office."}],
    )
    whole = client.chat.completions.create(**kw)
    text = whole.choices[0].message.content
    assert whole.choices[0].message.role == "assistant" and text.strip()
    events = list(client.chat.completions.create(**kw, stream=True))
    pieces = [e.choices[0].delta.content or "" for e in events if e.choices]
    assert "".join(pieces) == text  # the stream is the chosen beam, chunk by chunk
    assert events[-1].choices[0].finish_reason == whole.choices[0].finish_reason


def test_streamed_completion_and_concurrent_async_clients(smollm2_policy, smollm2_server):
    """Four clients at once against a server whose batch holds four and whose window is far
    longer than the test: they are searched together, exactly when the fourth arrives."""
    prompts = [f"Write one upbeat line about chore number {i}." for i in range(4)]

    async def together(base_url):
        c = openai.AsyncOpenAI(base_url=base_url, api_key="test-key", timeout=600)
        outs = await asyncio.gather(
            *[
                c.chat.completions.create(
                    model=MODEL, max_tokens=12, seed=3, messages=[{"role": "user", "content": p}]
                )
                for p in prompts
            ]
        )
        await c.close()
        return outs

    async def streamed(base_url):
        c = openai.AsyncOpenAI(base_url=base_url, api_key="test-key", timeout=300)
        stream = await c.completions.create(
            model=MODEL, prompt="Sunny days", max_tokens=8, seed=2, stream=True
        )
        text = "".join([e.choices[0].text async for e in stream])
        await c.close()
        return text

    with ServerThread(
        smollm2_policy, api_key="test-key", batch_window_ms=3_600_000, max_batch=4
    ) as srv:
        outs = asyncio.run(together(srv.base_url))
        assert srv.batcher.stats.calls == 1 and srv.batcher.stats.sizes == [4]
    assert all(o.choices[0].message.content.strip() for o in outs)
    text = asyncio.run(streamed(smollm2_server.base_url))
    assert isinstance(text, str) and text
