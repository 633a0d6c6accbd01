"""Value-model configs, prefix extraction (empty .. full, right targets) and the validation split."""

from __future__ import annotations

import pytest

from iro_blackbox.errors import ConfigError, InputError
from iro_blackbox.value import (
    ValueConfig,
    ValueExample,
    ValueTrainConfig,
    make_value_examples,
    split_examples,
)


@pytest.fixture(scope="module")
def tok():
    from iro_blackbox.tokenizers import load_tokenizer

    return load_tokenizer("minilm-l6")


RESPONSE = "The quick brown fox jumps over the lazy dog, and then it naps in the warm sun."


def n_tokens(tok, text: str) -> int:
    return len(tok(text, add_special_tokens=False)["input_ids"])


# ------------------------------------------------------------------ configs


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"tuning": "partial"}, "tuning"),
        ({"loss": "l1"}, "loss"),
        ({"prefix_mode": "words"}, "prefix_mode"),
        ({"chunk_tokens": 0}, "chunk_tokens"),
        ({"epochs": 0}, "epochs"),
        ({"lr": -1.0}, "lr"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"batch_size": True}, "batch_size"),
        ({"split_by": "day"}, "split_by"),
    ],
)
def test_train_config_errors_name_the_field(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        ValueTrainConfig(**kwargs)


def test_model_config_errors_and_unknown_keys():
    with pytest.raises(ConfigError, match="pooling"):
        ValueConfig(pooling="max")
    with pytest.raises(ConfigError, match="max_length"):
        ValueConfig(max_length=2)
    with pytest.raises(ConfigError, match="unknown value training config key.*epoch_count"):
        ValueTrainConfig.from_dict({"epoch_count": 3})


def test_config_json_round_trip_and_default_lr():
    cfg = ValueTrainConfig(
        model=ValueConfig(backbone="minilm-l6", max_length=128),
        tuning="lora",
        lora_target_modules=["query", "value"],
        prefix_mode="random",
    )
    d = cfg.to_dict()
    assert d["model"]["max_length"] == 128 and d["lora_target_modules"] == ["query", "value"]
    assert ValueTrainConfig.from_dict(d) == cfg
    assert cfg.learning_rate == 5e-4
    assert ValueTrainConfig(tuning="head", lr=0.01).learning_rate == 0.01


# ------------------------------------------------------------------ prefixes


def test_token_mode_gives_every_prefix_from_empty_to_full(tok):
    cfg = ValueTrainConfig(prefix_mode="token")
    exs = make_value_examples([("Tell me a story.", RESPONSE, 0.7, 2.0)], cfg, tokenizer=tok)
    partials = [e.partial for e in exs]
    assert partials[0] == "" and partials[-1] == RESPONSE
    assert all(RESPONSE.startswith(p) for p in partials)
    assert len(set(partials)) == len(partials) and partials == sorted(partials, key=len)
    # one prefix per token boundary: empty + every token end (the last one is the full text)
    assert len(exs) == n_tokens(tok, RESPONSE) + 1
    assert [n_tokens(tok, p) for p in partials] == list(range(len(exs)))
    assert all(e.target == 0.7 and e.weight == 2.0 and e.rollout == 0 for e in exs)
    assert all(e.prompt == "Tell me a story." for e in exs)


def test_chunk_mode_cuts_every_L_value_tokens(tok):
    cfg = ValueTrainConfig(prefix_mode="chunk", chunk_tokens=4)
    exs = make_value_examples(
        [("p1", RESPONSE, 1.0), {"prompt": "p2", "response": "Short one.", "reward": -2}],
        cfg,
        tokenizer=tok,
    )
    first = [e for e in exs if e.rollout == 0]
    n = n_tokens(tok, RESPONSE)
    counts = [n_tokens(tok, e.partial) for e in first]
    assert counts == [0, *range(4, n, 4), n]
    assert first[-1].partial == RESPONSE and all(e.target == 1.0 for e in first)
    second = [e for e in exs if e.rollout == 1]
    assert [e.partial for e in second] == ["", "Short one."]  # 3 tokens < L: empty and full
    assert all(e.target == -2.0 and e.weight == 1.0 and e.prompt == "p2" for e in second)


def test_random_mode_k_cuts_seeded(tok):
    rollouts = [("p", RESPONSE, 0.5)]
    a = make_value_examples(rollouts, ValueTrainConfig(prefix_mode="random", k_random=3), tok)
    b = make_value_examples(rollouts, ValueTrainConfig(prefix_mode="random", k_random=3), tok)
    c = make_value_examples(
        rollouts * 4, ValueTrainConfig(prefix_mode="random", k_random=3, seed=7), tok
    )
    assert a == b and len(a) == 5  # empty + 3 random cuts + full
    assert a[0].partial == "" and a[-1].partial == RESPONSE
    cuts = {tuple(e.partial for e in c if e.rollout == r) for r in range(4)}
    assert len(cuts) > 1  # each rollout draws its own cut points


def test_empty_response_and_rollout_forms(tok):
    class Row:  # like a store Rollout row, whose weight may be None
        prompt, response, reward, weight = "q", "", 3.0, None

    exs = make_value_examples([Row()], ValueTrainConfig(), tokenizer=tok)
    assert exs == [ValueExample("q", "", 3.0, 1.0, 0, 0, 0)]
    with pytest.raises(InputError, match="rollout 1: reward must be a number"):
        make_value_examples([("p", "a", 1.0), ("p", "b", None)], ValueTrainConfig(), tok)
    with pytest.raises(InputError, match="rollout 0: missing key 'reward'"):
        make_value_examples([{"prompt": "p", "response": "r"}], ValueTrainConfig(), tok)


def test_default_tokenizer_is_the_backbones():
    exs = make_value_examples(
        [("p", "Hello there friend.", 1.0)], ValueTrainConfig(prefix_mode="token")
    )
    assert [e.partial for e in exs] == [
        "",
        "Hello",
        "Hello there",
        "Hello there friend",
        "Hello there friend.",
    ]


# ------------------------------------------------------------------ split


def test_split_keeps_rollouts_and_prompts_whole(tok):
    rollouts = [(f"prompt {i % 5}", RESPONSE[: 20 + i], float(i)) for i in range(30)]
    exs = make_value_examples(rollouts, ValueTrainConfig(prefix_mode="token"), tokenizer=tok)
    tr, va, by = split_examples(exs, ValueTrainConfig(val_fraction=0.2))
    assert by == "rollout" and va and tr and sorted(tr + va) == list(range(len(exs)))
    assert not {exs[i].rollout for i in tr} & {exs[i].rollout for i in va}
    assert len({exs[i].rollout for i in va}) == 6  # 20% of 30 rollouts

    many = [(f"prompt {i}", "some answer", float(i)) for i in range(40)] * 2
    exs = make_value_examples(many, ValueTrainConfig(), tokenizer=tok)
    tr, va, by = split_examples(exs, ValueTrainConfig(val_fraction=0.25))
    assert by == "prompt"  # >= 20 distinct prompts: whole prompts are held out
    assert not {exs[i].prompt for i in tr} & {exs[i].prompt for i in va}
    assert len({exs[i].prompt for i in va}) == 10

    tr, va, _ = split_examples(exs, ValueTrainConfig(val_fraction=0.0))
    assert va == [] and len(tr) == len(exs)


@pytest.mark.parametrize("n_prompts", [40, 5])  # split by prompt, split by rollout
def test_split_never_trains_on_a_validation_answer_relabelled_for_another_prompt(tok, n_prompts):
    from iro_blackbox.value import RolloutData

    sampled = [RolloutData(f"prompt {i}", f"answer {i}", float(i % 3)) for i in range(n_prompts)]
    sampled += [RolloutData(f"prompt {i}", f"other {i}", 1.0) for i in range(n_prompts)]
    relabelled = [
        RolloutData(f"prompt {(i + d) % n_prompts}", r.response, 0.5, 1.0, r.prompt)
        for i, r in enumerate(sampled[:n_prompts])
        for d in (1, 2)
    ]
    rows = sampled + relabelled
    exs = make_value_examples(rows, ValueTrainConfig(), tokenizer=tok)
    tr, va, by = split_examples(exs, ValueTrainConfig(val_fraction=0.25))
    assert by == ("prompt" if n_prompts >= 20 else "rollout")
    held = {(rows[exs[i].rollout].prompt, rows[exs[i].rollout].response) for i in va}
    held = {key for key in held if key in {(r.prompt, r.response) for r in sampled}}
    assert held  # some sampled answers are held out ...
    trained = {(rows[exs[i].rollout].source, rows[exs[i].rollout].response) for i in tr}
    assert not held & trained  # ... and none of their relabelled copies is trained on
    copies = [i for i in tr if rows[exs[i].rollout].source]
    assert copies  # copies of the training answers still are
    assert not [i for i in va if rows[exs[i].rollout].source]  # validation: own answers only
    assert len({exs[i].rollout for i in va}) == round(0.25 * len(sampled))  # a quarter of them
    assert all(
        exs[i].origin == exs[i].rollout for i in range(len(exs)) if not rows[exs[i].rollout].source
    )
