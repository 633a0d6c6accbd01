"""The gate (a V_t that does not help never steers), grader relabelling and the value-model lab,
on real small models: the shipped MiniLM trained on a synthetic task whose reward is a known
function of the prompt AND the answer, and the tiny random BERT for the lab's plumbing."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from _fx_search import FnGrader
from _fx_value import NEUTRAL_WORDS

from iro_blackbox.errors import ConfigError, InputError
from iro_blackbox.iro.config import AlignConfig
from iro_blackbox.iro.gate import gate_check, validation_rollouts
from iro_blackbox.iro.lab import LabData, parse_variant, run_lab, subsample, summarize
from iro_blackbox.iro.relabel import relabel, relabel_pairs
from iro_blackbox.value import RolloutData, ValueConfig, ValueTrainConfig, make_value_examples

WORDS = ["apple", "river", "stone", "cloud", "tiger", "piano", "candle", "forest"]


def uses_word(answer: str, item: dict) -> float:
    """The reward: 1 when the answer uses the prompt's word, else 0."""
    return float(item["word"] in answer.split())


def task(n_prompts: int, per_prompt: int, seed: int):
    """Prompts asking for a word; answers that use it about half the time."""
    rng = random.Random(seed)
    rollouts, items = [], {}
    for i in range(n_prompts):
        word = WORDS[i % len(WORDS)]
        prompt = f"Write a line {i} that uses the word {word}."
        items[prompt] = {"word": word}
        for _ in range(per_prompt):
            words = [rng.choice(NEUTRAL_WORDS) for _ in range(6)]
            if rng.random() < 0.5:
                words.insert(rng.randint(0, 6), word)
            elif rng.random() < 0.5:  # another prompt's word: only the prompt tells it apart
                words.insert(rng.randint(0, 6), rng.choice([w for w in WORDS if w != word]))
            text = " ".join(words)
            rollouts.append(RolloutData(prompt, text, uses_word(text, items[prompt]), 1.0))
    return rollouts, items


def tcfg(backbone: str, seed: int = 0) -> ValueTrainConfig:
    return ValueTrainConfig(
        model=ValueConfig(backbone=backbone, max_length=64),
        epochs=3,
        batch_size=16,
        chunk_tokens=4,
        val_fraction=0.34,
        split_by="prompt",
        patience=0,
        seed=seed,
        lr=1e-4,
    )


@pytest.fixture(scope="module")
def trained(minilm_backbone):
    """V trained on the real rewards, and V trained on the same rollouts with rewards shuffled."""
    from iro_blackbox.value import train_value_model

    rollouts, _ = task(24, 6, seed=0)
    cfg = tcfg(minilm_backbone)
    real, _ = train_value_model(make_value_examples(rollouts, cfg), cfg, progress=False)
    rewards = [r.reward for r in rollouts]
    random.Random(1).shuffle(rewards)
    shuffled_rows = [r._replace(reward=x) for r, x in zip(rollouts, rewards, strict=True)]
    shuffled, _ = train_value_model(make_value_examples(shuffled_rows, cfg), cfg, progress=False)
    return rollouts, cfg, real, shuffled


@pytest.mark.slow
def test_gate_keeps_a_value_model_of_real_rewards_and_rejects_one_of_shuffled(trained):
    rollouts, cfg, real, shuffled = trained
    val = validation_rollouts(rollouts, cfg, real.tokenizer)
    # the slice the trainer held out: whole prompts, never trained on
    assert 0 < len({r.prompt for r in val}) < len({r.prompt for r in rollouts})
    keep = gate_check([], [], real, 1.0, val, cfg)
    assert keep["accepted"], keep
    assert keep["accuracy_with"] >= 0.6 and keep["pairs"] >= 50 and keep["gain_se"] > 0
    drop = gate_check([], [], shuffled, 1.0, val, cfg)
    assert not drop["accepted"], drop
    # a second value model that adds nothing to the first is not used either
    second = gate_check([real], [1.0], shuffled, 1.0, val, cfg)
    assert not second["accepted"] and second["accuracy_without"] == keep["accuracy_with"]


def test_gate_with_too_few_pairs_accepts_and_says_why(tiny_bert_dir):
    from iro_blackbox.value import ValueModel

    model = ValueModel.from_config(ValueConfig(backbone=str(tiny_bert_dir), max_length=64))
    rows = [RolloutData("p", "a b", 1.0), RolloutData("p", "c d", 0.0)]
    out = gate_check([], [], model, 1.0, rows, tcfg(str(tiny_bert_dir)))
    assert out["accepted"] and "too few" in out["reason"]


def test_relabel_grades_each_answer_against_other_prompts():
    rollouts, items = task(5, 2, seed=3)
    pairs = relabel_pairs(rollouts, 3, seed=0)
    assert len(pairs) == 3 * len(rollouts)
    assert all(p != r.prompt for p, r in pairs)
    assert pairs == relabel_pairs(rollouts, 3, seed=0)  # seeded
    extra = asyncio.run(relabel(rollouts, items, FnGrader(uses_word), k=3, seed=0))
    assert len(extra) == len(pairs)
    for (p, r), x in zip(pairs, extra, strict=True):
        assert (x.prompt, x.response) == (p, r.response)
        assert x.reward == uses_word(r.response, items[p])
    # asking for more prompts than exist gives every other prompt once
    assert len(relabel_pairs(rollouts, 99, seed=0)) == 4 * len(rollouts)


def test_variants_parse_and_bad_ones_say_what_is_wrong():
    v = parse_variant("minilm:full:pairwise:cross=4:ensemble=2")
    assert (v.backbone, v.tuning, v.loss, v.cross, v.ensemble) == (
        "minilm-l6",
        "full",
        "pairwise",
        4,
        2,
    )
    assert parse_variant("smollm2:lora").backbone == "smollm2-135m-instruct"
    assert parse_variant("genrm-zero").genrm == "zero"
    with pytest.raises(ConfigError, match="'fast' is not a tuning"):
        parse_variant("minilm:fast")
    with pytest.raises(ConfigError, match="unknown key 'depth'"):
        parse_variant("minilm:depth=3")


def test_subsample_takes_shares_of_prompts_and_rollouts():
    rollouts, _ = task(8, 4, seed=0)
    half = subsample(rollouts, 0.5, 1.0, seed=0)
    assert len({r.prompt for r in half}) == 4 and len(half) == 16
    quarter = subsample(rollouts, 1.0, 0.25, seed=0)
    assert len({r.prompt for r in quarter}) == 8 and len(quarter) == 8


def test_lab_trains_each_variant_per_seed_and_summarizes(tiny_bert_dir, tiny_lm_dir):
    rollouts, items = task(8, 4, seed=0)
    held, _ = task(4, 4, seed=9)
    cfg = AlignConfig.from_dict(
        {"data": "x.jsonl", "l": 4, "value_epochs": 1, "value_backbone": str(tiny_bert_dir)}
    )
    data = LabData("t", cfg, rollouts, held, items)
    variants = [
        parse_variant(str(tiny_bert_dir)),
        parse_variant(f"{tiny_bert_dir}:head:cross=2"),
        parse_variant(f"twotower:model={tiny_lm_dir}:al=1:cross=2:steps=20:ensemble=2"),
    ]
    rows = asyncio.run(
        run_lab(
            data,
            variants,
            seeds=[0, 1],
            fractions=[(0.5, 1.0), (1.0, 1.0)],
            grader=FnGrader(uses_word),
        )
    )
    assert len(rows) == 3 * 2 * 2
    assert all(r["heldout_pairs"] == rows[0]["heldout_pairs"] > 0 for r in rows)
    crossed = [r for r in rows if r["spec"]["cross"] == 2]
    assert len(crossed) == 8
    assert all(r["relabelled"] == 2 * r["train_rollouts"] / 3 for r in crossed)
    tower = [r for r in rows if r["spec"]["twotower"]]
    assert len({r["heldout_accuracy"] for r in tower}) > 1  # seeds and data sizes differ
    summary = summarize(rows)
    assert len(summary) == 6 and all(s["seeds"] == 2 for s in summary)
    for s in summary:
        assert 0.0 <= s["heldout_accuracy"]["mean"] <= 1.0 and s["heldout_accuracy"]["sd"] >= 0


def test_two_tower_scores_a_prefix_as_its_one_pass_over_the_whole_answer(tiny_lm_dir):
    """The answer tower reads every prefix of an answer from one causal pass: a prefix scored on
    its own text gives the same value."""
    import torch

    from iro_blackbox.value.twotower import Towers, TwoTowerConfig, TwoTowerValue, fit_head

    towers = Towers(str(tiny_lm_dir), answer_layers=1)
    answer = "The river runs by the stone and the tiger sleeps."
    cuts = [0, 9, 21, len(answer)]  # token boundaries, as prefixes are cut
    p = towers.prompts(["Use the word river."] * len(cuts))
    r = torch.stack([towers.answer_at(answer, c) for c in cuts])
    head, stats = fit_head(p, r, torch.tensor([0.0, 0.2, 0.5, 1.0]), None, TwoTowerConfig(steps=5))
    model = TwoTowerValue(towers, [head], stats)
    whole = model.score_cuts(["Use the word river."] * 4, [answer] * 4, cuts)
    alone = model.score(["Use the word river."] * 4, [answer[:c] for c in cuts])
    assert whole == pytest.approx(alone, abs=1e-4)
    assert torch.equal(towers.answer_at(answer, 0), torch.zeros(towers.dim))


def test_a_searched_prefix_is_read_on_from_its_parents_cache(tiny_lm_dir):
    """In a search every candidate extends a beam scored at the step before: the answer tower
    reads only the new tokens (after the parent's cached ones) and gets the states of a whole
    causal pass."""
    import torch

    from iro_blackbox.value.twotower import Towers

    towers = Towers(str(tiny_lm_dir), answer_layers=1)
    read: list[int] = []
    hook = towers.answer_lm.register_forward_pre_hook(
        lambda _m, _a, kw: read.append(kw["input_ids"].shape[1]), with_kwargs=True
    )
    parent = "The river runs by the stone"
    children = [parent + " and the tiger sleeps.", parent + "s of the old mill."]
    try:
        towers.answer_table(parent, extend=True)
        got = [towers.answer_table(c, extend=True)[1] for c in children]
    finally:
        hook.remove()
    n_parent = len(towers.tokenizer(parent, add_special_tokens=False)["input_ids"])
    n_children = [len(towers.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in children]
    assert read[0] == n_parent and all(r < n for r, n in zip(read[1:], n_children, strict=True))
    fresh = Towers(str(tiny_lm_dir), answer_layers=1)
    for c, table in zip(children, got, strict=True):
        assert torch.allclose(table, fresh.answer_table(c)[1], atol=1e-5)
    # a whole search step at once: candidates of equal shape (shared and new tokens) go through
    # the tower in one batch, each from its own parent's cache
    tok = towers.tokenizer
    twins = [parent + " and the cat sleeps.", parent + " and the dog sleeps."]
    assert len({len(tok(t, add_special_tokens=False)["input_ids"]) for t in twins}) == 1
    steps = [t + " Then it rains." for t in twins] + ["", parent]
    batched = Towers(str(tiny_lm_dir), answer_layers=1)
    batched.searched_tables([parent])
    batched.searched_tables(twins)
    shapes: list[tuple[int, int]] = []
    hook = batched.answer_lm.register_forward_pre_hook(
        lambda _m, _a, kw: shapes.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )
    try:
        got_steps = batched.searched_tables(steps)
    finally:
        hook.remove()
    assert [b for b, _ in shapes] == [2], shapes  # the twins' children: one batch of two
    for t, (ends, table) in zip(steps, got_steps, strict=True):
        want_ends, want = fresh.answer_table(t)
        assert ends == want_ends and torch.allclose(table, want, atol=1e-5)


def test_gate_on_a_few_validation_prompts_decides_on_the_point_estimate(trained):
    """A handful of validation prompts gives no usable standard error (the demo's 24 training
    prompts hold 2 apart): a value model that ranks them well is used on its point estimate."""
    rollouts, cfg, real, shuffled = trained
    val = validation_rollouts(rollouts, cfg, real.tokenizer)
    four = sorted({r.prompt for r in val})[:4]
    few = [r for r in val if r.prompt in four]
    keep = gate_check([], [], real, 1.0, few, cfg)
    assert keep["prompts"] == 4 and keep["pairs"] >= 50 and keep["accepted"], keep
    assert "too few prompts for a standard error" in keep["reason"]


def test_joint_answer_tower_reads_the_prompt_and_each_prefix_from_one_pass(tiny_lm_dir):
    """joint=True: the answer's states depend on the prompt read before it, and a prefix scored
    on its own text equals its cut of the whole answer's pass (the prompt's cache reused)."""
    import torch

    from iro_blackbox.value.twotower import Towers, TwoTowerConfig, TwoTowerValue, fit_head

    towers = Towers(str(tiny_lm_dir), answer_layers=2, joint=True)
    answer = "The river runs by the stone and the tiger sleeps."
    a, b = "Use the word river.", "Answer in French."
    assert not torch.allclose(towers.answer_at(answer, len(answer), a),
                              towers.answer_at(answer, len(answer), b))  # fmt: skip
    cuts = [9, 21, len(answer)]
    p = towers.prompts([a] * 3)
    r = torch.stack([towers.answer_at(answer, c, a) for c in cuts])
    head, stats = fit_head(p, r, torch.tensor([0.0, 0.5, 1.0]), None, TwoTowerConfig(steps=5))
    model = TwoTowerValue(towers, [head], stats)
    whole = model.score_cuts([a] * 3, [answer] * 3, cuts)
    alone = model.score([a] * 3, [answer[:c] for c in cuts])
    assert whole == pytest.approx(alone, abs=1e-4)


def test_pairwise_head_learns_the_order_within_each_group():
    """loss="pairwise": the head ranks rows of one group (prompt, position) by their targets,
    on features where only an interaction of prompt and answer decides the order."""
    import torch

    from iro_blackbox.value.twotower import TwoTowerConfig, fit_head

    g = torch.Generator().manual_seed(0)
    n_groups, per = 60, 6
    p = torch.randn(n_groups, 8, generator=g).repeat_interleave(per, 0)
    r = torch.randn(n_groups * per, 8, generator=g)
    y = (p * r).sum(1)  # the better answer is the one aligned with its prompt
    y = y + 3.0 * torch.randn(n_groups, generator=g).repeat_interleave(per)  # prompt offsets
    groups = torch.arange(n_groups).repeat_interleave(per)
    cfg = TwoTowerConfig(steps=600, hidden=64, loss="pairwise")
    head, stats = fit_head(p, r, y, None, cfg, None, groups)
    with torch.no_grad():
        s = head((p - stats["p_mean"]) / stats["p_std"], (r - stats["r_mean"]) / stats["r_std"])
    i, j = torch.nonzero(
        (groups[:, None] == groups[None, :]) & (y[:, None] > y[None, :]), as_tuple=True
    )
    assert float((s[i] > s[j]).float().mean()) > 0.8
    with pytest.raises(ValueError, match="groups"):
        fit_head(p, r, y, None, cfg)


def _interaction_data(seed: int, n_groups: int = 40, per: int = 6):
    import torch

    g = torch.Generator().manual_seed(seed)
    p = torch.randn(n_groups, 8, generator=g).repeat_interleave(per, 0)
    r = torch.randn(n_groups * per, 8, generator=g)
    y = (p * r).sum(1) + 0.5 * torch.randn(n_groups * per, generator=g)
    return p, r, y, torch.arange(n_groups).repeat_interleave(per)


def test_head_keeps_the_checkpoint_with_the_best_validation_pair_accuracy():
    """select="accuracy" and select="mse" train the same trajectory (same seed) and differ only
    in the checkpoint kept: each is at least as good as the other on its own criterion."""
    import torch

    from iro_blackbox.value.ranking import _pairs
    from iro_blackbox.value.twotower import TwoTowerConfig, fit_head

    p, r, y, groups = _interaction_data(0, n_groups=20)
    pv, rv, yv, gv = _interaction_data(1, n_groups=20)
    vi, vj = _pairs(gv, yv)

    def measure(select: str) -> tuple[float, float]:
        cfg = TwoTowerConfig(steps=1500, hidden=32, loss="pairwise", select=select)
        head, st = fit_head(p, r, y, None, cfg, (pv, rv, yv, gv), groups)
        with torch.no_grad():
            s = head((pv - st["p_mean"]) / st["p_std"], (rv - st["r_mean"]) / st["r_std"])
        mse = float((((yv - st["y_mean"]) / st["y_std"] - s) ** 2).mean())
        return float((s[vi] > s[vj]).float().mean()), mse

    acc_a, mse_a = measure("accuracy")
    acc_m, mse_m = measure("mse")
    assert acc_a >= acc_m and mse_m <= mse_a
    assert (acc_a, mse_a) != (acc_m, mse_m)  # the two rules kept different checkpoints here


def test_two_tower_saved_before_the_product_option_loads_with_its_product_head(
    tmp_path, tiny_lm_dir
):
    """A model saved by an earlier version (its config has no `product`; its MLP read p * r) loads
    with that head and scores as it did."""
    import json

    import torch

    from iro_blackbox.value.twotower import (
        Towers,
        TwoTowerConfig,
        TwoTowerValue,
        fit_head,
        load_two_tower,
        save_two_tower,
    )

    cfg = TwoTowerConfig(backbone=str(tiny_lm_dir), answer_layers=1, steps=5, product=True)
    towers = Towers(cfg.backbone, cfg.prompt_layer, cfg.answer_layers)
    answers = ["The river runs.", "A stone sleeps."]
    p = towers.prompts(["Use the word river."] * 2)
    r = torch.stack([towers.answer_at(a, len(a)) for a in answers])
    head, stats = fit_head(p, r, torch.tensor([1.0, 0.0]), None, cfg)
    model = TwoTowerValue(towers, [head], stats)
    save_two_tower(model, cfg, tmp_path)
    meta = json.loads((tmp_path / "twotower.json").read_text())
    del meta["config"]["product"], meta["config"]["select"]
    (tmp_path / "twotower.json").write_text(json.dumps(meta))
    loaded = load_two_tower(tmp_path)
    assert loaded.heads[0].product
    prompts = ["Use the word river."] * 2
    assert loaded.score(prompts, answers) == pytest.approx(model.score(prompts, answers), abs=1e-5)


def test_two_tower_heads_average_and_survive_save_and_load(tmp_path, tiny_lm_dir):
    """cfg.heads heads, fit with consecutive seeds on features read once: the model's value is
    their mean score, it saves and loads as such, and a folder saved with one head under the
    earlier "head." names still loads."""
    import torch
    from safetensors.torch import load_file, save_file

    from iro_blackbox.value.twotower import (
        TwoTowerConfig,
        TwoTowerValue,
        load_two_tower,
        save_two_tower,
        shared_towers,
        train_two_tower,
    )

    cfg = TwoTowerConfig(backbone=str(tiny_lm_dir), answer_layers=1, steps=20, heads=3)
    rows = [
        RolloutData("Use the word river.", "The river runs by the stone.", 1.0, 1.0),
        RolloutData("Use the word river.", "A stone sleeps in the sun.", 0.0, 1.0),
        RolloutData("Use the word tiger.", "The tiger sleeps.", 1.0, 1.0),
        RolloutData("Use the word tiger.", "The river runs.", 0.0, 1.0),
    ]
    towers = shared_towers(cfg.backbone, cfg.prompt_layer, cfg.answer_layers)
    tcfg = AlignConfig.from_dict({"data": "d.jsonl"}).value.train_config(
        seed=0, chunk_tokens=4, device="cpu"
    )
    examples = make_value_examples(rows, tcfg, tokenizer=towers.tokenizer)
    model = train_two_tower(examples, rows, list(range(len(examples))), cfg)
    assert len(model.heads) == 3
    weights = [h.net[0].weight for h in model.heads]
    assert not torch.equal(weights[0], weights[1])  # different seeds, different heads
    prompts = [r.prompt for r in rows]
    answers = [r.response for r in rows]
    singles = [TwoTowerValue(towers, [h], model.stats).score(prompts, answers) for h in model.heads]
    mean = [sum(col) / 3 for col in zip(*singles, strict=True)]
    assert model.score(prompts, answers) == pytest.approx(mean, abs=1e-5)

    save_two_tower(model, cfg, tmp_path / "v")
    loaded = load_two_tower(tmp_path / "v")
    assert len(loaded.heads) == 3
    assert loaded.score(prompts, answers) == pytest.approx(mean, abs=1e-5)

    one = TwoTowerValue(towers, model.heads[:1], model.stats)
    save_two_tower(one, cfg, tmp_path / "old")
    tensors = load_file(str(tmp_path / "old" / "head.safetensors"))
    old = {k.replace("heads.0.", "head.", 1): v for k, v in tensors.items()}
    save_file(old, str(tmp_path / "old" / "head.safetensors"))
    assert load_two_tower(tmp_path / "old").score(prompts, answers) == pytest.approx(
        singles[0], abs=1e-5
    )

    # a folder from a newer iro-bb, or with settings this one does not know: a clear error
    meta_path = tmp_path / "v" / "twotower.json"
    meta = json.loads(meta_path.read_text())
    assert meta["format_version"] == 2
    meta_path.write_text(json.dumps({**meta, "format_version": 3}))
    with pytest.raises(InputError, match="format version 3 was saved by a newer iro-bb"):
        load_two_tower(tmp_path / "v")
    meta_path.write_text(json.dumps({**meta, "format_version": True}))
    with pytest.raises(InputError, match="no valid format_version"):
        load_two_tower(tmp_path / "v")
    meta_path.write_text(json.dumps({**meta, "config": {**meta["config"], "rotary": 1}}))
    with pytest.raises(InputError, match="does not know: \\['rotary'\\]"):
        load_two_tower(tmp_path / "v")


def test_value_heads_must_be_a_positive_integer():
    with pytest.raises(ConfigError, match="value_heads"):
        AlignConfig.from_dict({"data": "d.jsonl", "value_heads": 0})
    # heads belong to the two-tower model: asked of a fine-tuned one, a clear error, not ignored
    with pytest.raises(ConfigError, match="applies to --value-model twotower only"):
        AlignConfig.from_dict({"data": "d.jsonl", "value_heads": 4})
    cfg = AlignConfig.from_dict({"data": "d.jsonl", "value_heads": 4, "value_model": "twotower"})
    assert cfg.value.value_heads == 4
