"""What the search needs from a value model: within-prompt ranking metrics by hand, the centered
and pairwise objectives on a tiny real backbone, the held-out measurement, the beta schedule."""

from __future__ import annotations

import random

import pytest
import torch

from iro_blackbox.errors import ConfigError
from iro_blackbox.iro.config import AlignConfig
from iro_blackbox.value import (
    RolloutData,
    ValueConfig,
    ValueExample,
    ValueTrainConfig,
    make_value_examples,
    train_value_model,
)
from iro_blackbox.value.ranking import (
    barely_above_chance,
    calibration,
    centered_targets,
    heldout_ranking,
    pair_groups,
    pairwise_loss,
    ranking_metrics,
)


def test_ranking_metrics_by_hand():
    # group 0 (position 1): targets 3 > 2 > 1; predictions get one pair of three wrong
    # group 1 (position 2): targets 1, 0; prediction tie -> half a pair
    pred = [0.9, 0.1, 0.5, 0.3, 0.3]
    target = [3.0, 2.0, 1.0, 1.0, 0.0]
    m = ranking_metrics(pred, target, [0, 0, 0, 1, 1], [1, 1, 1, 2, 2])
    # pairs: (0,1) right, (0,2) right, (1,2) wrong, (3,4) tie -> (1 + 1 + 0 + 0.5) / 4
    assert m["accuracy"] == pytest.approx(2.5 / 4) and m["pairs"] == 4
    assert m["by_position"] == {
        1: {"accuracy": 2 / 3, "pairs": 3},
        2: {"accuracy": 0.5, "pairs": 1},
    }
    # tau-b of group 0: C=2, D=1 over 3 pairs -> 1/3; group 1's predictions all tie, so its
    # tau-b is undefined and left out of the mean
    assert m["kendall_tau"] == pytest.approx(1 / 3) and m["groups"] == 1
    # identical prefixes are never a pair
    same = ranking_metrics([0.1, 0.2], [1.0, 0.0], [0, 0], [0, 0], inputs=["", ""])
    assert same["pairs"] == 0 and same["accuracy"] is None
    assert barely_above_chance(0.53) and not barely_above_chance(0.6)
    assert not barely_above_chance(None)


def test_groups_centering_and_the_pairwise_loss():
    exs = [
        ValueExample("p", "", 1.0, 1.0, 0, 0),
        ValueExample("p", "a", 1.0, 1.0, 0, 1),
        ValueExample("p", "", 0.0, 1.0, 1, 0),
        ValueExample("p", "b", 0.0, 1.0, 1, 1),
        ValueExample("q", "c", 5.0, 1.0, 2, 1),
        ValueExample("q", "d", 7.0, 1.0, 3, 1),
        ValueExample("q", "e", 7.0, 1.0, 4, -1),
    ]
    assert pair_groups(exs) == [0, 1, 0, 1, 2, 2, -7]
    # per prompt, each rollout counted once: p's mean (1 + 0) / 2, q's (5 + 7 + 7) / 3
    assert centered_targets(exs) == pytest.approx([0.5, 0.5, -0.5, -0.5, -4 / 3, 2 / 3, 2 / 3])
    raw = torch.tensor([0.0, 2.0, 0.0, 0.0, 1.0, 0.0, 9.0])
    target = torch.tensor([e.target for e in exs])
    w = torch.ones(7)
    loss = pairwise_loss(raw, target, w, torch.tensor(pair_groups(exs)))
    # pairs (target_i > target_j, same group): (0,2) gap 1, (1,3) gap 1, (5,4) gap 2
    expect = (
        1 * torch.nn.functional.softplus(torch.tensor(0.0))
        + 1 * torch.nn.functional.softplus(torch.tensor(-2.0))
        + 2 * torch.nn.functional.softplus(torch.tensor(1.0))
    ) / 4
    assert float(loss) == pytest.approx(float(expect))
    assert pairwise_loss(raw[:1], target[:1], w[:1], torch.tensor([0])) is None
    cal = calibration([0.1, 0.2, 0.3, 0.4], [0.0, 1.0, 0.0, 1.0], bins=2)
    assert cal == [
        {"pred": pytest.approx(0.15), "actual": 0.5, "n": 2},
        {"pred": pytest.approx(0.35), "actual": 0.5, "n": 2},
    ]


def _keyword_rollouts(n_prompts: int, seed: int) -> list[RolloutData]:
    """Prompts of very different reward levels; within a prompt the reward follows one word."""
    rng = random.Random(seed)
    out = []
    for p in range(n_prompts):
        level = rng.uniform(-2, 2)
        for _ in range(6):
            good = rng.random() < 0.5
            words = " ".join(rng.choice(["red", "blue", "green", "tall"]) for _ in range(3))
            text = ("wonderful " if good else "terrible ") + words
            out.append(RolloutData(f"prompt number {p}", text, level + (1.0 if good else 0.0)))
    return out


@pytest.mark.parametrize("loss", ["centered", "pairwise"])
def test_within_prompt_objectives_learn_the_order(tiny_bert_dir, loss):
    cfg = ValueTrainConfig(
        model=ValueConfig(backbone=str(tiny_bert_dir)),
        loss=loss,
        epochs=6,
        lr=3e-3,
        chunk_tokens=1,
        split_by="prompt",
        val_fraction=0.25,
        seed=0,
    )
    train = _keyword_rollouts(24, 0)
    model, m = train_value_model(make_value_examples(train, cfg), cfg, progress=False)
    assert m["targets"] == "centered per prompt" and m["loss"] == loss
    assert m["val_pairs"] > 0 and m["val_pairwise_accuracy"] is not None
    assert set(m["val_ranking_by_position"]) and m["val_calibration"]
    held = heldout_ranking(model, _keyword_rollouts(6, 1), cfg)
    assert held["prompts"] == 6 and held["pairs"] > 0
    # the first word decides the reward: a model that learned it ranks well above chance
    assert held["accuracy"] > 0.75, held
    assert "val_ranking_by_position" not in m["history"][-1]  # details only for the best epoch


def test_beta_schedule():
    c = AlignConfig.from_dict({"data": "d.jsonl", "iterations": 3, "beta": "1,2,2.5"})
    assert c.search.beta == "1,2,2.5" and c.search.betas(3) == [1.0, 2.0, 2.5]
    assert AlignConfig.from_dict({"data": "d.jsonl", "beta": [1, 2]}).search.betas(3) == [
        1.0,
        2.0,
        2.0,
    ]
    one = AlignConfig.from_dict({"data": "d.jsonl", "beta": "2"})
    assert one.search.beta == 2.0 and one.search.betas(2) == [2.0, 2.0]
    # a run stored before --value-loss existed keeps its default name (it resumes)
    assert "value_loss" not in AlignConfig.from_dict({"data": "d.jsonl"}).identity()
    for bad, needle in (
        ("0", "beta must be a number > 0"),
        ("1,x", "beta must be a number > 0"),
        ("1,2,3", "beta gives 3 values for 2 iteration"),
    ):
        with pytest.raises(ConfigError, match=needle):
            AlignConfig.from_dict({"data": "d.jsonl", "beta": bad})
    with pytest.raises(ConfigError, match="value_loss must be one of"):
        AlignConfig.from_dict({"data": "d.jsonl", "value_loss": "hinge"})


def test_a_value_model_near_chance_is_warned_about_in_output_and_report(tmp_path):
    from iro_blackbox.iro.report import write_report
    from iro_blackbox.iro.value_checks import ranking_warning

    good = {
        "loss": "mse",
        "heldout": {"accuracy": 0.71, "pairs": 300},
        "val_pairwise_accuracy": 0.52,
        "val_pairs": 20,  # too few pairs to warn on
    }
    poor = {
        "loss": "centered",
        "heldout": {
            "accuracy": 0.52,
            "pairs": 300,
            "by_position": {"1": {"accuracy": 0.52, "pairs": 40}},
        },
        "val_calibration": [
            {"pred": 0.1, "actual": 0.2, "n": 5},
            {"pred": 0.5, "actual": 0.4, "n": 5},
        ],
    }
    assert ranking_warning(1, good) is None
    w = ranking_warning(2, poor)
    assert w.startswith(
        "V_2 ranks held-out prompts' answers of the same prompt barely above chance"
    )
    assert "--fresh-prompts" in w and "--value-backbone" in w
    # measured on the demo: V_2 ranked its own validation pairs below chance (0.46 over 710)
    # while it ranked pi_1's held-out answers at 0.63
    val = ranking_warning(
        3,
        {
            "heldout": {"accuracy": 0.63, "pairs": 10515},
            "val_pairwise_accuracy": 0.46,
            "val_pairs": 710,
        },
    )
    assert "validation prefixes of the same prompt below chance" in val
    assert "0.46" in val and "710 pairs" in val
    poor["warning"] = w
    its = [
        {"t": 0, "stage": "done", "metrics": {"eval_mean_reward": 0.1}},
        {"t": 1, "stage": "done", "metrics": {"eval_mean_reward": 0.3, "value": good}},
        {"t": 2, "stage": "done", "metrics": {"eval_mean_reward": 0.3, "value": poor}},
    ]
    html = write_report("r", {}, its, {}, tmp_path).read_text()
    assert "held-out pair accuracy" in html and "0.710" in html and "Warning" in html
    assert (tmp_path / "value_ranking.png").is_file() and (
        tmp_path / "value_calibration.png"
    ).is_file()


def test_eval_budgets_bad_input_is_one_line(capsys):
    from iro_blackbox.cli.app import main

    for argv, needle in (
        (["eval", "x.jsonl", "--run", "r", "--budgets", "4,x"], "--budgets takes search sizes"),
        (["eval", "x.jsonl", "--run", "r", "--plot", "p.png"], "give --budgets too"),
    ):
        assert main(argv) != 0
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2
