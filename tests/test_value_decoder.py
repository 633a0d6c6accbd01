"""A decoder backbone (tiny random Llama, real SmolLM2 tokenizer): last-token pooling, training,
batching, save/load, BCE, and scoring many extensions of one prefix through its KV cache."""

from __future__ import annotations

import random

import pytest

from iro_blackbox.errors import ConfigError
from iro_blackbox.value import (
    ValueConfig,
    ValueExample,
    ValueModel,
    ValueTrainConfig,
    train_value_model,
)
from iro_blackbox.value.prefix_cache import prefix_groups

pytestmark = pytest.mark.slow

WORDS = ["blue", "river", "stone", "quiet", "paper", "window", "orange", "garden", "clock", "bread"]
PROMPT = "Finish the sentence about the weekend."


def ends_with_good(n: int, seed: int) -> list[ValueExample]:
    """Reward 1 when the text ends with the word 'good', else 0 (a last-token function)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 9))]
        good = i % 2 == 0
        words.append("good" if good else rng.choice(WORDS))
        out.append(ValueExample(PROMPT, " ".join(words), 1.0 if good else 0.0, 1.0, i))
    return out


@pytest.fixture(scope="module")
def trained_llama(tiny_llama_backbone):
    cfg = ValueTrainConfig(
        model=ValueConfig(backbone=tiny_llama_backbone, max_length=64),
        tuning="full",
        lr=3e-3,
        epochs=4,
        batch_size=16,
        val_fraction=0.25,
        loss="bce",
    )
    return train_value_model(ends_with_good(160, seed=0), cfg, progress=False)


def test_decoder_uses_last_token_pooling_and_learns(trained_llama):
    vm, m = trained_llama
    assert vm.is_decoder and vm.pooling == "last" and vm.output == "sigmoid"
    assert m["val_mse"] < 0.5 * m["val_mse_constant"], m
    fresh = ends_with_good(40, seed=99)
    pred = vm.score([e.prompt for e in fresh], [e.partial for e in fresh])
    assert all(0.0 < p < 1.0 for p in pred)  # BCE models output probabilities
    acc = sum((p > 0.5) == (e.target == 1.0) for p, e in zip(pred, fresh, strict=True)) / len(fresh)
    assert acc >= 0.9


def test_decoder_batches_equal_single_and_round_trip(trained_llama, tmp_path):
    vm, _ = trained_llama
    prompts = [
        PROMPT,
        "Hi",
        PROMPT,
        "A much longer prompt with many more words in it than the rest",
    ]
    partials = ["", "stone good", "blue river quiet paper window orange garden", "clock"]
    batched = vm.score(prompts, partials, batch_size=3)
    single = [vm.score([p], [x])[0] for p, x in zip(prompts, partials, strict=True)]
    assert batched == pytest.approx(single, abs=1e-5)
    loaded = ValueModel.load(vm.save(tmp_path / "llama-vm"), device="cpu")
    assert loaded.pooling == "last" and loaded.output == "sigmoid"
    assert loaded.score(prompts, partials) == pytest.approx(batched, abs=1e-5)


def test_extensions_of_one_prefix_reuse_its_kv_cache(trained_llama):
    vm, _ = trained_llama
    beams = ["blue river quiet paper window orange garden clock", "stone stone bread"]
    chunks = ["good", "bread clock", "paper", "orange window blue", "quiet"]
    prompts, partials = [], []
    for b in beams:
        for c in chunks:
            prompts.append(PROMPT + " Write it in the style of a weather report, please.")
            partials.append(b + " " + c)
    prompts += ["unrelated", "short"]
    partials += ["text", "bread good"]
    seqs = vm.encode(prompts, partials)
    groups, rest = prefix_groups(seqs)
    assert len(groups) == 2 and sorted(len(g[1]) for g in groups) == [5, 5]  # one per beam
    assert sorted(rest) == [10, 11]
    plain = vm.score_ids(seqs, batch_size=4)  # plain length-bucketed path
    # decoder: prefix-cache path; batches of 4 split groups, batches of 64 mix both prefixes
    # (different lengths: the prefix pass is padded and each suffix has its own positions)
    for bs in (4, 64):
        assert vm.score(prompts, partials, batch_size=bs) == pytest.approx(plain, abs=1e-5)


def test_bce_needs_rewards_in_unit_interval(tiny_llama_backbone):
    cfg = ValueTrainConfig(model=ValueConfig(backbone=tiny_llama_backbone), loss="bce")
    bad = [ValueExample("p", "x", 2.0), ValueExample("p", "y", 0.0)]
    with pytest.raises(ConfigError, match=r"loss='bce' needs rewards in \[0, 1\]"):
        train_value_model(bad, cfg, progress=False)
