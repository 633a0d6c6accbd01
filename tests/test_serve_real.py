"""The official openai client, unchanged, against `iro-bb serve` answering with real CBS: the shipped
SmolLM2-135M-Instruct guided by a MiniLM value model, on 127.0.0.1 with an API key."""

from __future__ import annotations

import asyncio

import openai
import pytest

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


def test_streamed_completion_and_concurrent_async_clients(smollm2_server):
    async def go():
        c = openai.AsyncOpenAI(base_url=smollm2_server.base_url, api_key="test-key", timeout=300)
        prompts = [f"Write one upbeat line about chore number {i}." for i in range(4)]
        calls0 = smollm2_server.batcher.stats.calls
        outs = await asyncio.gather(
            *[
                c.chat.completions.create(
                    model=MODEL, max_tokens=12, seed=3, messages=[{"role": "user", "content": p}]
                )
                for p in prompts
            ]
        )
        batched_calls = smollm2_server.batcher.stats.calls - calls0
        stream = await c.completions.create(
            model=MODEL, prompt="Sunny days", max_tokens=8, seed=2, stream=True
        )
        text = "".join([e.choices[0].text async for e in stream])
        await c.close()
        return outs, batched_calls, text

    outs, calls, text = asyncio.run(go())
    assert all(o.choices[0].message.content.strip() for o in outs)
    assert calls < 4  # the four clients were searched together
    assert isinstance(text, str) and text
