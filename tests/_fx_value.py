"""Fixtures for the value tests: the shipped MiniLM backbone, a synthetic sentiment data set whose
reward is a known function of the text, one MiniLM value model trained on it (shared by the tests
that only score), and the tiny random Llama decoder of _fx_hf as a backbone."""

from __future__ import annotations

import random

import pytest

POS_WORDS = [
    "great",
    "wonderful",
    "excellent",
    "lovely",
    "happy",
    "amazing",
    "delightful",
    "superb",
]
NEG_WORDS = ["terrible", "awful", "horrible", "sad", "boring", "dreadful", "poor", "ugly"]
NEUTRAL_WORDS = [
    "the", "movie", "was", "a", "story", "with", "actors", "and", "music", "scenes", "city",
    "plot", "long", "today", "some", "our",
]  # fmt: skip
REVIEW_PROMPT = "Write a short movie review."


def sentiment_text(rng: random.Random) -> tuple[str, float]:
    """A review and its reward: (# positive words) - (# negative words)."""
    words = [rng.choice(NEUTRAL_WORDS) for _ in range(rng.randint(5, 10))]
    n_pos, n_neg = rng.randint(0, 3), rng.randint(0, 3)
    for w in [rng.choice(POS_WORDS) for _ in range(n_pos)] + [
        rng.choice(NEG_WORDS) for _ in range(n_neg)
    ]:
        words.insert(rng.randint(0, len(words)), w)
    return " ".join(words), float(n_pos - n_neg)


def sentiment_examples(n: int, seed: int):
    """n ValueExamples (prompt, full review, reward, weight 1, rollout i)."""
    from iro_blackbox.value import ValueExample

    rng = random.Random(seed)
    out = []
    for i in range(n):
        text, reward = sentiment_text(rng)
        out.append(ValueExample(REVIEW_PROMPT, text, reward, 1.0, i))
    return out


@pytest.fixture(scope="session")
def minilm_backbone() -> str:
    """The shipped all-MiniLM-L6-v2 backbone spec (fails loudly if it is not installed)."""
    from iro_blackbox.models import resolve_model

    resolve_model("minilm-l6")
    return "minilm-l6"


@pytest.fixture(scope="session")
def trained_minilm_value(minilm_backbone):
    """(ValueModel, metrics): full fine-tuning of MiniLM on 200 synthetic reviews, 3 epochs."""
    from iro_blackbox.value import ValueConfig, ValueTrainConfig, train_value_model

    cfg = ValueTrainConfig(
        model=ValueConfig(backbone=minilm_backbone, max_length=64),
        tuning="full",
        epochs=3,
        batch_size=16,
        val_fraction=0.25,
        patience=2,
        seed=0,
    )
    return train_value_model(sentiment_examples(200, seed=0), cfg, progress=False)


@pytest.fixture(scope="session")
def tiny_llama_backbone(tiny_lm_dir) -> str:
    """The tiny random Llama of _fx_hf (2 layers, hidden 64, the real SmolLM2 tokenizer) as a
    value-model backbone."""
    return str(tiny_lm_dir)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    """A tiny randomly initialised BERT (1 layer, hidden 32) with the shipped MiniLM tokenizer in
    a folder: a real value-model backbone that trains in well under a second (pure-logic tests)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from iro_blackbox.models import resolve_model

    folder = tmp_path_factory.mktemp("tiny-bert")
    tok = AutoTokenizer.from_pretrained(resolve_model("minilm-l6").path)
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
