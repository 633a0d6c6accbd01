"""sample, best_of_n and cbs on real parts: the shipped SmolLM2 through the local provider, the
built-in VADER sentiment grader and a MiniLM value model. Small sizes (2 prompts, W=2, K=2, L=8,
32 tokens)."""

from __future__ import annotations

import asyncio
import math

import pytest
from _fx_search import make_examples

from iro_blackbox.dataset import Example
from iro_blackbox.params import SamplingParams
from iro_blackbox.search import CombinedScorer, SearchParams, best_of_n, cbs, sample

pytestmark = pytest.mark.slow

W, K, L, MAX = 2, 2, 8, 32


def _examples() -> list[Example]:
    texts = [
        "Describe a rainy Monday morning in two sentences.",
        "Tell me about waiting in a long queue at the post office.",
    ]
    return [
        Example(id=f"real{i}", prompt=[{"role": "user", "content": t}], data={"prompt": t})
        for i, t in enumerate(texts)
    ]


def _params(**kw) -> SearchParams:
    base = dict(
        w=W, k=K, l=L, max_tokens=MAX, n=W * K, concurrency=2,
        sampling=SamplingParams(temperature=1.0, seed=1),
    )  # fmt: skip
    base.update(kw)
    return SearchParams(**base)


@pytest.fixture(scope="module")
def sentiment():
    from iro_blackbox.graders import load_grader

    return load_grader("sentiment")


@pytest.fixture(scope="module")
def minilm_value():
    """A real MiniLM value model (untrained head: its scores are arbitrary but its own)."""
    from iro_blackbox.value import ValueConfig, ValueModel

    return ValueModel.from_config(ValueConfig(backbone="minilm-l6"), seed=0)


class VaderValue:
    """A real, untrained value function: VADER's compound score of the partial response."""

    name = "vader"

    def __init__(self, sign: float = 1.0):
        self.sign = sign

    def score(self, prompts, partials):
        from iro_blackbox.graders.sentiment import vader_compound

        return [self.sign * vader_compound(x) for x in partials]


def test_cbs_on_real_smollm2(smollm2_hf, sentiment, minilm_value):
    from iro_blackbox.graders.sentiment import vader_compound

    exs = _examples()
    scorer = CombinedScorer([minilm_value], betas=[0.5])
    kv_before = dict(smollm2_hf.kv_stats)
    batches_before = smollm2_hf.stats.requests
    res = asyncio.run(cbs(exs, smollm2_hf, scorer, _params(), grader=sentiment))
    # every continued beam came back with its handle: the provider reused its KV cache (K rows)
    continued = sum((r.usage.requests - W) for r in res)  # all but the first step's requests
    assert smollm2_hf.kv_stats["handle_hits"] - kv_before["handle_hits"] == continued * K > 0
    assert smollm2_hf.kv_stats["handle_misses"] == kv_before["handle_misses"]
    # the two prompts shared their provider calls: one forward batch per step
    assert smollm2_hf.stats.requests - batches_before == max(r.usage.steps for r in res)
    assert [r.example.id for r in res] == ["real0", "real1"]
    for ex, r in zip(exs, res, strict=True):
        finals = [c for c in r.candidates if c.final]
        assert len(finals) == W and r.best in finals and r.best.selected
        assert r.picked_by == "grader"
        pool = [c for c in finals if c.finish_reason == "stop"] or finals
        assert r.best.reward == max(c.reward for c in pool)
        for c in r.candidates:
            assert c.text.strip() or c.finish_reason == "stop"
            assert 0 <= c.completion_tokens <= MAX
            assert c.reward == pytest.approx(vader_compound(c.text))
            if c.finish_reason == "length":
                assert c.completion_tokens == MAX
        # S is the value model's own score divided by beta
        direct = minilm_value.score([ex.text] * len(finals), [c.text for c in finals])
        assert [c.score for c in finals] == pytest.approx([v / 0.5 for v in direct], abs=1e-3)
        assert 1 <= r.usage.steps <= math.ceil(MAX / L)
        assert r.usage.provider_calls == r.usage.steps
        assert 0 < r.usage.completion_tokens <= r.usage.steps * W * K * L


def test_sample_and_best_of_n_on_real_smollm2(smollm2_hf, sentiment):
    exs = _examples()
    params = _params()
    base = asyncio.run(sample(exs, smollm2_hf, None, params, grader=sentiment))
    bon = asyncio.run(best_of_n(exs, smollm2_hf, None, params, grader=sentiment))
    for b, r in zip(base, bon, strict=True):
        assert len(b.candidates) == len(r.candidates) == W * K
        assert b.best is b.candidates[0]
        # seeded: best_of_n draws the very samples `sample` drew
        assert [c.text for c in r.candidates] == [c.text for c in b.candidates]
        rewards = [c.reward for c in r.candidates]
        assert r.best.reward == max(rewards) and r.best.index == rewards.index(max(rewards))
        assert all(0 < c.completion_tokens <= MAX for c in r.candidates)
        assert r.usage.completion_tokens == sum(c.completion_tokens for c in r.candidates)


def test_value_guidance_steers_the_real_model(smollm2_hf):
    """CBS guided by a sentiment value ends more positive than CBS guided by its opposite."""
    from iro_blackbox.graders.sentiment import vader_compound

    exs = _examples() + make_examples(2, chat=True)
    params = _params(w=2, k=3, max_tokens=24, selection="topw", concurrency=4)
    up = asyncio.run(cbs(exs, smollm2_hf, CombinedScorer([VaderValue(+1)]), params))
    down = asyncio.run(cbs(exs, smollm2_hf, CombinedScorer([VaderValue(-1)]), params))
    mean_up = sum(vader_compound(r.best.text) for r in up) / len(exs)
    mean_down = sum(vader_compound(r.best.text) for r in down) / len(exs)
    assert mean_up > mean_down + 0.3, (mean_up, mean_down)


def test_cbs_through_the_real_api_server_replays_from_cache(llama_server, store):
    """cbs over the openai provider against the real llama-cpp-python server: a rerun of the same
    search replays every chunk from the request cache (stable sample indices, deterministic
    selection) and makes zero HTTP requests."""
    from iro_blackbox.providers.openai.provider import OpenAIProvider

    exs = _examples()[:1]
    params = _params(max_tokens=16, concurrency=1, selection="softmax")
    scorer = CombinedScorer([VaderValue(+1)])

    async def run():
        provider = OpenAIProvider(llama_server.model, base_url=llama_server.base_url, store=store)
        try:
            res = await cbs(exs, provider, scorer, params)
        finally:
            await provider.aclose()
        return res, provider.stats

    first, stats1 = asyncio.run(run())
    second, stats2 = asyncio.run(run())
    (r1,), (r2,) = first, second
    assert stats1.requests >= r1.usage.chunks > 0  # the server ignores n: one request a sample
    assert stats2.requests == 0 and r2.usage.cached_chunks == r2.usage.chunks == r1.usage.chunks
    assert [c.text for c in r2.candidates] == [c.text for c in r1.candidates]
    assert r1.best.text.strip() and r1.best.completion_tokens <= 16
