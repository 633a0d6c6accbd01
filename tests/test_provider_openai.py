"""The openai provider against a REAL OpenAI-compatible server: llama-cpp-python serving the
shipped SmolLM2 GGUF on 127.0.0.1 (tests/_fx_llama.py), reached through a counting proxy
(tests/_fx_api.py) so the HTTP requests the server receives are counted independently of the
provider's own statistics."""

from __future__ import annotations

import asyncio

import pytest

from iro_blackbox.errors import PermanentError
from iro_blackbox.params import SamplingParams
from iro_blackbox.providers.base import Extend
from iro_blackbox.providers.openai.provider import OpenAIProvider

pytestmark = pytest.mark.slow

MODEL = "smollm2-135m-instruct"
SECRET = "sk-live-SECRET-do-not-store-42"
# The chunked-versus-one-shot check continues a counting answer: its greedy margins are wide.
# llama.cpp re-evaluates a re-sent prefix in one batch, which moves logits in the last digits, so
# on an answer full of near-ties (e.g. whether to stop now) a token could flip between a chunked
# and a one-shot run for reasons that have nothing to do with the provider.
COUNT = [{"role": "user", "content": "Count from 1 to 30, separated by commas."}]
START = "1, 2, 3, 4, 5,"
GREEDY = SamplingParams(temperature=0.0, logprobs=True)
# llama-cpp-python sorts the whole vocabulary in Python for every token it returns logprobs for
# (seconds per token on a busy 2-core machine): the logprob checks use few tokens.


def run(provider: OpenAIProvider, coro_fn):
    async def go():
        try:
            return await coro_fn(provider)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def make(proxy, store=None, **kw) -> OpenAIProvider:
    kw.setdefault("mode", "completions")
    kw.setdefault("timeout", 600)  # a loaded 2-core machine can be slow; a timeout would retry
    return OpenAIProvider(MODEL, base_url=proxy.base_url, store=store, **kw)


def test_chunked_greedy_continuation_equals_one_completion(llama_proxy, store):
    p = make(llama_proxy, store)

    async def go(p: OpenAIProvider):
        full = (await p.extend([Extend(COUNT, prefix=START, max_tokens=12, params=GREEDY)]))[0][0]
        chunks, prefix = [], START
        while sum(len(c.logprobs) for c in chunks) < 12:
            c = (await p.extend([Extend(COUNT, prefix=prefix, max_tokens=4, params=GREEDY)]))[0][0]
            chunks.append(c)
            prefix += c.text
            if c.finish_reason == "stop":
                break
        return full, chunks, prefix

    full, chunks, prefix = run(p, go)
    assert len(chunks) == 3 and full.text.startswith(" 6,")
    assert prefix == START + full.text  # the same text, chunk by chunk
    assert all(c.finish_reason == "length" for c in chunks[:-1])
    assert chunks[-1].finish_reason == full.finish_reason
    lps = [x for c in chunks for x in c.logprobs]
    assert len(lps) == len(full.logprobs) == full.usage.completion_tokens
    assert lps == pytest.approx(full.logprobs, abs=0.05)
    assert all(x <= 0 for x in lps)
    assert all(len(c.logprobs) == c.usage.completion_tokens for c in chunks)
    # what went over the wire: the locally rendered chat template + the prefix, to /completions
    last = llama_proxy.received[-1]
    assert last.path == "/v1/completions" and last.body["logprobs"] == 1
    assert last.body["prompt"].startswith("<|im_start|>")
    sent_prefix = prefix[: len(prefix) - len(chunks[-1].text)]
    assert last.body["prompt"].endswith("<|im_start|>assistant\n" + sent_prefix)
    assert p.stats.requests == llama_proxy.count() == 1 + len(chunks)


def test_n_samples_although_the_server_ignores_n(llama_proxy, store):
    p = make(llama_proxy, store)
    params = SamplingParams(temperature=1.0, seed=5)
    msgs = [{"role": "user", "content": "Name an animal."}]
    out = run(p, lambda p: p.extend([Extend(msgs, n=3, max_tokens=6, params=params)]))
    assert len(out[0]) == 3 and all(c.text for c in out[0])
    assert len({c.text for c in out[0]}) >= 2  # three seeds: not one sample copied
    bodies = [r.body for r in llama_proxy.received]
    assert len(bodies) == 3 and bodies[0]["n"] == 3 and "n" not in bodies[1] | bodies[2]
    assert len({b["seed"] for b in bodies}) == 3
    assert p.describe()["n_honoured"] == {"/completions": False}


def test_repeat_run_replays_from_cache_with_zero_requests(llama_proxy, store, tmp_path):
    reqs = [
        Extend(COUNT, prefix="1, 2,", n=2, max_tokens=4, params=SamplingParams(seed=1)),
        Extend("The capital of France is", n=1, max_tokens=4, params=GREEDY),
    ]
    first = make(llama_proxy, store, mode="auto", api_key=SECRET)
    out1 = run(first, lambda p: p.extend(reqs))
    caps = first.describe()["capabilities"]
    # what the probe found out about llama-cpp-python
    assert caps["completions"] and caps["chat"] and caps["completions_logprobs"]
    assert caps["completions_n"] is False and caps["modes"]["chat-continue"]["works"] is False
    assert caps["echo_score"] is False  # its echo logprobs are shifted: score() is refused
    sent = llama_proxy.count()
    assert sent == first.stats.requests and first.stats.completion_tokens > 0
    assert all(r.authorization == f"Bearer {SECRET}" for r in llama_proxy.received)

    again = make(llama_proxy, store, mode="auto", api_key=SECRET)
    out2 = run(again, lambda p: p.extend(reqs))
    assert llama_proxy.count() == sent and again.stats.requests == 0  # probe included
    assert again.stats.cache_hits == 3 and all(c.cached for row in out2 for c in row)
    assert [[c.text for c in row] for row in out2] == [[c.text for c in row] for row in out1]
    with pytest.raises(PermanentError, match="does not support reliably"):
        run(again, lambda p: p.score(COUNT, " 1, 2"))
    assert llama_proxy.count() == sent

    fresh = make(llama_proxy, store, cache=False)
    out3 = run(fresh, lambda p: p.extend(reqs))
    assert fresh.stats.cache_hits == 0 and not any(c.cached for row in out3 for c in row)
    assert llama_proxy.count() - sent == fresh.stats.requests >= 3
    assert out3[1][0].text == out1[1][0].text  # greedy: the same answer again

    store.close()
    for f in tmp_path.glob("test.db*"):
        assert SECRET.encode() not in f.read_bytes(), f.name
