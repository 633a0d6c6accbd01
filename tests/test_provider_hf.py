"""The local transformers provider `hf`.

Pure logic on a tiny random Llama (`tiny_hf`, fast); the claims that need a real model on the
shipped SmolLM2 (`smollm2_hf`, marked slow): multi-chunk greedy == model.generate token for token,
logprobs == a plain forward pass, EOS ends a chunk.
"""

from __future__ import annotations

import asyncio

import pytest
import torch

from iro_blackbox.errors import ConfigError, InputError
from iro_blackbox.params import SamplingParams
from iro_blackbox.providers.base import Extend, Provider
from iro_blackbox.providers.hf import HFProvider
from iro_blackbox.registry import PROVIDERS

GREEDY = SamplingParams(temperature=0)
CHAT = [{"role": "user", "content": "Tell me a short story about a cat who learns to swim."}]
SHORT = "Hi"


def run(coro):
    return asyncio.run(coro)


def reference_greedy(provider: HFProvider, prompt, n_tokens: int) -> list[int]:
    """One plain model.generate(do_sample=False) of the same prompt."""
    ctx = list(provider._enc.prompt_ids(prompt))
    ids = torch.tensor([ctx], device=provider.device)
    with torch.inference_mode():
        out = provider.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=n_tokens,
            do_sample=False,
            pad_token_id=provider.tokenizer.pad_token_id,
        )
    return out[0, len(ctx) :].tolist()


def reference_logprobs(provider: HFProvider, prompt, tokens: list[int]) -> list[float]:
    """Logprobs of `tokens` after `prompt` from one plain forward pass (no cache, no mask)."""
    ctx = list(provider._enc.prompt_ids(prompt))
    ids = torch.tensor([ctx + tokens], device=provider.device)
    with torch.inference_mode():
        logp = provider.model(input_ids=ids).logits[0].float().log_softmax(-1)
    return [logp[len(ctx) - 1 + i, t].item() for i, t in enumerate(tokens)]


async def chunked(provider, prompt, chunks: int, size: int, params=GREEDY, handles=True):
    """Extend `prompt` chunk by chunk; returns the chunks."""
    out, prefix, handle = [], "", None
    for _ in range(chunks):
        req = Extend(prompt, prefix=prefix, max_tokens=size, params=params, handle=handle)
        [[c]] = await provider.extend([req])
        out.append(c)
        prefix += c.text
        handle = c.handle if handles else None
    return out


# ---- tiny random model: pure logic --------------------------------------------------------------


def test_protocol_registry_and_helpers(tiny_hf, tiny_lm_dir):
    assert isinstance(tiny_hf, Provider)
    d = tiny_hf.describe()
    assert d["provider"] == "hf" and d["device"] == "cpu" and d["dtype"] == "float32"
    assert d["capabilities"]["kv_handles"] and d["capabilities"]["logprobs"]
    assert tiny_hf.count_tokens("hello world") == 2
    rendered = tiny_hf.render_prompt(CHAT)
    assert rendered.endswith("<|im_start|>assistant\n") and CHAT[0]["content"] in rendered
    assert tiny_hf.render_prompt("plain text") == "plain text"
    built = PROVIDERS.get("hf")(model=str(tiny_lm_dir), device="cpu")
    assert isinstance(built, HFProvider) and built.model_name == tiny_lm_dir.name


def test_chunks_have_l_tokens_and_handles_carry_the_context(tiny_hf):
    [[c]] = run(tiny_hf.extend([Extend(CHAT, max_tokens=8, params=GREEDY)]))
    assert c.finish_reason == "length" and len(c.tokens) == 8 and c.logprobs is None
    ctx = tiny_hf._enc.prompt_ids(CHAT)
    assert c.handle.token_ids == ctx + tuple(c.tokens)
    assert c.handle.response_text == c.text
    assert c.text == tiny_hf.tokenizer.decode(c.tokens)
    assert c.usage.prompt_tokens == len(ctx) and c.usage.completion_tokens == 8


def test_greedy_chunks_with_and_without_handles_equal_one_generate(tiny_hf):
    hits = tiny_hf.kv_stats["handle_hits"]
    with_handles = run(chunked(tiny_hf, CHAT, 4, 8))
    assert tiny_hf.kv_stats["handle_hits"] == hits + 3
    tokens = [t for c in with_handles for t in c.tokens]
    assert tokens == reference_greedy(tiny_hf, CHAT, 32)
    reencoded = run(chunked(tiny_hf, CHAT, 4, 8, handles=False))
    assert "".join(c.text for c in reencoded) == "".join(c.text for c in with_handles)


def test_mixed_prompts_in_one_call_equal_each_alone(tiny_hf):
    prompts = [CHAT, SHORT, "A much longer plain text prompt that goes on for a while " * 3]
    alone = [run(tiny_hf.extend([Extend(p, max_tokens=10, params=GREEDY)]))[0][0] for p in prompts]
    before = tiny_hf.stats.requests
    mixed = run(tiny_hf.extend([Extend(p, max_tokens=10, params=GREEDY) for p in prompts]))
    assert tiny_hf.stats.requests == before + 1  # one batch
    assert [m[0].tokens for m in mixed] == [a.tokens for a in alone]

    # Continue from a mix of handles of two different batches plus a row with no handle.
    reqs = [
        Extend(CHAT, prefix=alone[0].text, max_tokens=6, params=GREEDY, handle=alone[0].handle),
        Extend(
            SHORT, prefix=mixed[1][0].text, max_tokens=6, params=GREEDY, handle=mixed[1][0].handle
        ),
        Extend(prompts[2], prefix=mixed[2][0].text, max_tokens=6, params=GREEDY),
    ]
    together = run(tiny_hf.extend(reqs))
    for p, first, [nxt] in zip(prompts, alone, together, strict=True):
        assert first.tokens + nxt.tokens == reference_greedy(tiny_hf, p, 16)
    # Only the short prompt's row of the mixed block (most columns are its left padding).
    [[nxt]] = run(tiny_hf.extend(reqs[1:2]))
    assert mixed[1][0].tokens + nxt.tokens == reference_greedy(tiny_hf, SHORT, 16)


def test_beam_rows_select_and_repeat_cache_rows(tiny_hf):
    """Two beams, each extended K=3 times: every row continues its own beam's cache."""
    params = SamplingParams(seed=5)
    beams = run(tiny_hf.extend([Extend(CHAT, n=2, max_tokens=6, params=params)]))[0]
    assert beams[0].tokens != beams[1].tokens
    reqs = [
        Extend(CHAT, prefix=b.text, n=3, max_tokens=5, params=params, handle=b.handle)
        for b in beams
    ]
    with_kv = run(tiny_hf.extend(reqs))
    without = run(
        tiny_hf.extend([Extend(r.prompt, r.prefix, r.n, r.max_tokens, r.params) for r in reqs])
    )
    assert [[c.tokens for c in row] for row in with_kv] == [
        [c.tokens for c in row] for row in without
    ]
    for b, row in zip(beams, with_kv, strict=True):
        for c in row:
            assert c.handle.token_ids[: len(b.handle.token_ids)] == b.handle.token_ids


def test_seeded_sampling_is_reproducible_and_batch_independent(tiny_hf):
    p = SamplingParams(seed=11, top_p=0.9)
    [[a]] = run(tiny_hf.extend([Extend(CHAT, max_tokens=12, params=p)]))
    [[again]] = run(tiny_hf.extend([Extend(CHAT, max_tokens=12, params=p)]))
    assert a.tokens == again.tokens
    crowd = [
        Extend(SHORT, n=6, max_tokens=20, params=SamplingParams(seed=1, top_k=5)),
        Extend(CHAT, max_tokens=12, params=p),
        Extend(
            "another prompt entirely", n=8, max_tokens=3, params=SamplingParams(temperature=0.7)
        ),
        Extend(CHAT, max_tokens=12, params=GREEDY),
    ]
    out = run(tiny_hf.extend(crowd))
    assert sum(len(r) for r in out) == 16
    assert out[1][0].tokens == a.tokens
    [[other_seed]] = run(tiny_hf.extend([Extend(CHAT, max_tokens=12, params=p.replace(seed=12))]))
    assert other_seed.tokens != a.tokens


def test_n_rows_and_sample_index(tiny_hf):
    p = SamplingParams(seed=3)
    [rows] = run(tiny_hf.extend([Extend(SHORT, n=4, max_tokens=8, params=p)]))
    assert len(rows) == 4 and len({tuple(c.tokens) for c in rows}) == 4
    [[third]] = run(tiny_hf.extend([Extend(SHORT, n=1, max_tokens=8, params=p, sample_index=2)]))
    assert third.tokens == rows[2].tokens


def test_top_k_one_is_greedy(tiny_hf):
    [[g]] = run(tiny_hf.extend([Extend(CHAT, max_tokens=10, params=GREEDY)]))
    [[k1]] = run(tiny_hf.extend([Extend(CHAT, max_tokens=10, params=SamplingParams(top_k=1))]))
    assert k1.tokens == g.tokens


def test_logprobs_and_score_match_a_forward_pass(tiny_hf):
    p = SamplingParams(seed=2, temperature=0.8, top_k=20, logprobs=True)
    chunks = run(chunked(tiny_hf, CHAT, 2, 6, params=p))
    tokens = chunks[0].tokens + chunks[1].tokens
    ref = reference_logprobs(tiny_hf, CHAT, tokens)
    got = chunks[0].logprobs + chunks[1].logprobs
    assert torch.allclose(torch.tensor(got), torch.tensor(ref), atol=1e-4)
    text = tiny_hf.tokenizer.decode(tiny_hf.tokenizer.encode("The cat swam across the pond."))
    ids = tiny_hf.tokenizer.encode(text, add_special_tokens=False)
    scored = run(tiny_hf.score(CHAT, text))
    assert torch.allclose(
        torch.tensor(scored), torch.tensor(reference_logprobs(tiny_hf, CHAT, ids)), atol=1e-4
    )
    assert run(tiny_hf.score(CHAT, "")) == []


def test_stop_strings(tiny_hf):
    [[full]] = run(tiny_hf.extend([Extend(CHAT, max_tokens=16, params=GREEDY)]))
    stop = full.text[10:13]
    [[cut]] = run(tiny_hf.extend([Extend(CHAT, max_tokens=16, params=GREEDY.replace(stop=[stop]))]))
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.find(stop)]
    assert len(cut.tokens) < len(full.tokens)
    if cut.handle is not None:  # the cut fell on a token boundary: the handle continues from it
        assert cut.handle.response_text == cut.text

    # A stop string that starts at the end of the prefix and ends in the new chunk.
    a, b = run(chunked(tiny_hf, CHAT, 2, 8))
    spanning = a.text[-2:] + b.text[:2]
    req = Extend(
        CHAT, prefix=a.text, max_tokens=8, params=GREEDY.replace(stop=spanning), handle=a.handle
    )
    [[c]] = run(tiny_hf.extend([req]))
    assert c.finish_reason == "stop" and c.text == ""


def test_concurrent_calls_are_coalesced_into_one_batch(tiny_hf):
    prompts = [CHAT, SHORT, "third prompt", "fourth prompt, a bit longer than the others"]
    alone = [
        run(tiny_hf.extend([Extend(p, max_tokens=5, params=GREEDY)]))[0][0].tokens for p in prompts
    ]

    async def many():
        before = tiny_hf.stats.requests
        out = await asyncio.gather(
            *(tiny_hf.extend([Extend(p, max_tokens=5, params=GREEDY)]) for p in prompts)
        )
        return out, tiny_hf.stats.requests - before

    out, batches = run(many())
    assert batches == 1
    assert [o[0][0].tokens for o in out] == alone

    async def queued_while_running():
        """Calls arriving one by one, each in its own tick, while a batch runs: merged into the
        next batch. The test holds the model's lock, so the long batch is taken by the worker but
        cannot finish before the others arrive, however fast or slow the machine is."""
        before = tiny_hf.stats.requests
        tiny_hf._torch_lock.acquire()
        try:
            long = asyncio.create_task(tiny_hf.extend([Extend(CHAT, max_tokens=30, params=GREEDY)]))
            await asyncio.sleep(0)  # the call runs up to its wait: its rows are handed over
            while tiny_hf._held or tiny_hf._queue:  # until the worker has taken the long batch
                await asyncio.sleep(0.001)
            later = []
            for p in prompts:
                later.append(
                    asyncio.create_task(tiny_hf.extend([Extend(p, max_tokens=5, params=GREEDY)]))
                )
                await asyncio.sleep(0)  # one tick each: four separate hand-overs to the worker
            while tiny_hf._held:
                await asyncio.sleep(0.001)
        finally:
            tiny_hf._torch_lock.release()
        out = await asyncio.gather(*later)
        await long
        return out, tiny_hf.stats.requests - before

    out, batches = run(queued_while_running())
    assert [o[0][0].tokens for o in out] == alone
    assert batches == 2  # the long one, then the four that queued behind it together


def test_calls_from_two_threads_with_their_own_loops(tiny_hf):
    import threading

    alone = {
        p: run(tiny_hf.extend([Extend(p, max_tokens=6, params=GREEDY)]))[0][0].tokens
        for p in (SHORT, "x y z")
    }
    got: dict[str, list[int]] = {}

    def worker(p):
        got[p] = asyncio.run(tiny_hf.extend([Extend(p, max_tokens=6, params=GREEDY)]))[0][0].tokens

    threads = [threading.Thread(target=worker, args=(p,)) for p in alone for _ in range(1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert got == alone


def test_a_cancelled_call_does_not_block_later_ones(tiny_hf):
    async def go():
        t = asyncio.create_task(tiny_hf.extend([Extend(CHAT, max_tokens=50, params=GREEDY)]))
        await asyncio.sleep(0)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        return await tiny_hf.extend([Extend(SHORT, max_tokens=3, params=GREEDY)])

    [[c]] = run(go())
    assert len(c.tokens) == 3


def test_large_calls_split_into_batches_of_max_rows(tiny_lm_dir, tiny_hf):
    small = HFProvider.from_model(tiny_hf.model, tiny_hf.tokenizer, max_batch_rows=4)
    p = SamplingParams(seed=9)
    [rows] = run(small.extend([Extend(SHORT, n=10, max_tokens=4, params=p)]))
    assert small.stats.requests == 3 and len(rows) == 10
    [ref] = run(tiny_hf.extend([Extend(SHORT, n=10, max_tokens=4, params=p)]))
    assert [c.tokens for c in rows] == [c.tokens for c in ref]


def test_handles_still_work_after_eviction_or_mismatch(tiny_hf):
    tight = HFProvider.from_model(tiny_hf.model, tiny_hf.tokenizer, kv_budget_mb=0.001)
    [[a]] = run(tight.extend([Extend(CHAT, max_tokens=8, params=GREEDY)]))
    run(tight.extend([Extend(SHORT, max_tokens=8, params=GREEDY)]))  # evicts a's block
    assert tight.cache_info()["evicted_blocks"] >= 1
    req = Extend(CHAT, prefix=a.text, max_tokens=8, params=GREEDY, handle=a.handle)
    [[b]] = run(tight.extend([req]))
    assert tight.kv_stats["handle_misses"] == 1 and tight.kv_stats["handle_hits"] == 0
    assert a.tokens + b.tokens == reference_greedy(tiny_hf, CHAT, 16)
    # A handle from another provider instance, or for another prefix, is ignored (re-encoded).
    [[c]] = run(tiny_hf.extend([req]))
    assert c.tokens == b.tokens
    [[d]] = run(
        tight.extend([Extend(CHAT, prefix="", max_tokens=8, params=GREEDY, handle=a.handle)])
    )
    assert d.tokens == a.tokens


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"n": 0}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 5000}, "max_tokens"),
        ({"sample_index": -1}, "sample_index"),
        ({"params": "greedy"}, "params"),
        ({"params": {"temprature": 0}}, "temprature"),
        ({"params": {"top_p": 1.5}}, "top_p"),
        ({"prefix": 3}, "prefix"),
    ],
)
def test_bad_params_name_the_parameter(tiny_hf, kwargs, word):
    with pytest.raises(ConfigError, match=word):
        run(tiny_hf.extend([Extend(CHAT, **kwargs)]))


def test_bad_inputs(tiny_hf):
    with pytest.raises(InputError, match="prompt"):
        run(tiny_hf.extend([Extend(prompt=[{"role": "user"}])]))
    with pytest.raises(InputError, match="Extend"):
        run(tiny_hf.extend(["not a request"]))
    with pytest.raises(ConfigError, match="dtype"):
        HFProvider("never-loaded", dtype="int3")
    with pytest.raises(ConfigError, match="max_batch_rows"):
        HFProvider.from_model(tiny_hf.model, tiny_hf.tokenizer, max_batch_rows=0)
    with pytest.raises(ConfigError, match="kv_budget_mb"):
        HFProvider.from_model(tiny_hf.model, tiny_hf.tokenizer, kv_budget_mb=-1)
    assert run(tiny_hf.extend([])) == []


def test_gather_rows_selects_repeats_and_pads_blocks():
    from iro_blackbox.providers.hf.kv import KVBlock, RowSource, gather_rows

    def block(rows, length, fill):
        k = torch.arange(rows * length, dtype=torch.float32).reshape(rows, 1, length, 1) + fill
        mask = torch.ones(rows, length, dtype=torch.bool)
        mask[0, :2] = False  # row 0 is left padded by two columns
        return KVBlock([k], [k * -1], mask)

    a, b = block(2, 5, 0.0), block(1, 3, 100.0)
    g = gather_rows([RowSource(a, 1, 5), RowSource(b, 0, 1), RowSource(a, 1, 3), None], "cpu")
    assert g.keys[0].shape == (4, 1, 5, 1) and g.n_valid.tolist() == [5, 1, 3, 0]
    assert g.mask.tolist() == [
        [True] * 5,
        [False, False, False, False, True],  # b is 2 columns shorter (right aligned), padded by 2
        [True, True, True, False, False],  # the same row of a again, only 3 columns valid
        [False] * 5,
    ]
    assert g.keys[0][1, 0, 2:, 0].tolist() == [100.0, 101.0, 102.0]
    assert torch.equal(g.keys[0][0], g.keys[0][2]) and torch.equal(g.values[0][0], -g.keys[0][0])
    whole = gather_rows([RowSource(a, 0, 3), RowSource(a, 1, 5)], "cpu")
    assert whole.keys[0] is a.keys[0]  # a whole block in order is used without a copy
    assert whole.mask[0].tolist() == [False, False, True, True, True]
    trimmed = gather_rows([RowSource(a, 0, 1)], "cpu")  # only column 2 is used: others dropped
    assert trimmed.length == 1 and trimmed.keys[0][0, 0, :, 0].tolist() == [2.0]
    assert gather_rows([None, None], "cpu") is None


# ---- the shipped SmolLM2: claims that need a real model --------------------------------------


@pytest.mark.slow
def test_smollm2_chunks_equal_generate_and_logprobs_match(smollm2_hf):
    """Two prompts of different lengths in one call, 4 chunks of 8 through handles, equal one
    greedy model.generate of 32 tokens each; logprobs equal a plain forward pass."""
    prompts = [CHAT, [{"role": "user", "content": "List three colours."}]]
    params = GREEDY.replace(logprobs=True)
    got = {0: [], 1: []}
    lps = {0: [], 1: []}
    prefix, handles = ["", ""], [None, None]
    for _ in range(4):
        reqs = [
            Extend(p, prefix=prefix[i], max_tokens=8, params=params, handle=handles[i])
            for i, p in enumerate(prompts)
        ]
        out = run(smollm2_hf.extend(reqs))
        for i, [c] in enumerate(out):
            assert c.finish_reason == "length"
            got[i] += c.tokens
            lps[i] += c.logprobs
            prefix[i] += c.text
            handles[i] = c.handle
    for i, p in enumerate(prompts):
        assert got[i] == reference_greedy(smollm2_hf, p, 32)
        ref = reference_logprobs(smollm2_hf, p, got[i])
        assert torch.allclose(torch.tensor(lps[i]), torch.tensor(ref), atol=1e-4)
        assert prefix[i] == smollm2_hf.tokenizer.decode(got[i])
    scored = run(smollm2_hf.score(prompts[0], prefix[0]))
    assert torch.allclose(torch.tensor(scored), torch.tensor(lps[0]), atol=1e-4)
    # The same text by re-encoding the prefix each time (no handles).
    plain = run(chunked(smollm2_hf, prompts[1], 4, 8, handles=False))
    assert "".join(c.text for c in plain) == prefix[1]


@pytest.mark.slow
def test_smollm2_eos_ends_the_chunk(smollm2_hf):
    prompt = [{"role": "user", "content": "Answer with one word: what colour is the sky?"}]
    [[c]] = run(smollm2_hf.extend([Extend(prompt, max_tokens=24, params=GREEDY)]))
    assert c.finish_reason == "stop"
    assert "<|im_end|>" not in c.text and smollm2_hf.tokenizer.eos_token_id not in c.tokens
    assert c.usage.completion_tokens == len(c.tokens) + 1  # the EOS was sampled, not returned
    assert 0 < len(c.tokens) < 24 and "blue" in c.text.lower()


def test_kv_reuse_uses_the_current_cache_api(tiny_hf):
    """Continuing from a handle goes through transformers' `cache=` argument: no deprecation
    warning (the old `past_key_values=` goes away in transformers 5.40)."""
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        [[c]] = run(tiny_hf.extend([Extend(CHAT, max_tokens=4, params=GREEDY)]))
        [[d]] = run(
            tiny_hf.extend(
                [Extend(CHAT, prefix=c.text, handle=c.handle, max_tokens=4, params=GREEDY)]
            )
        )
    assert d.tokens and tiny_hf.kv_stats["handle_hits"] >= 1
    messages = [str(w.message) for w in seen]
    assert not [m for m in messages if "past_key_values" in m or "deprecated" in m.lower()], (
        messages
    )
