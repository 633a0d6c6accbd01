"""Value models on the real MiniLM backbone: learning a known reward, save/load, batching, input
format, tuning modes (which weights change), warm start and the store registry."""

from __future__ import annotations

import json

import pytest
import torch
from _fx_value import REVIEW_PROMPT, sentiment_examples

from iro_blackbox.errors import ConfigError
from iro_blackbox.value import ValueConfig, ValueModel, ValueTrainConfig, train_value_model

pytestmark = pytest.mark.slow


def _mse(pred, target):
    return sum((p - t) ** 2 for p, t in zip(pred, target, strict=True)) / len(target)


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _changed(before, model) -> set[str]:
    after = dict(model.named_parameters())
    return {n for n, p in before.items() if not torch.equal(p, after[n].detach())}


def test_beats_a_constant_predictor_on_held_out_data(trained_minilm_value):
    vm, m = trained_minilm_value
    # the training run's own validation split (whole rollouts held out)
    assert m["n_val"] == 50 and m["n_train"] == 150 and m["split_by"] == "rollout"
    assert m["val_mse"] < 0.5 * m["val_mse_constant"], m
    assert m["val_pearson"] > 0.8
    assert {"train_loss", "val_loss", "samples_per_s", "epochs_run", "history"} <= set(m)
    assert m["samples_per_s"] > 0 and 1 <= m["epochs_run"] <= 3
    # fresh reviews the model never saw, scored through the public API in reward units
    fresh = sentiment_examples(60, seed=123)
    pred = vm.score([e.prompt for e in fresh], [e.partial for e in fresh])
    truth = [e.target for e in fresh]
    constant = _mse([m["constant_prediction"]] * len(truth), truth)
    assert _mse(pred, truth) < 0.5 * constant
    pos = vm.score([REVIEW_PROMPT], ["a wonderful amazing lovely movie"])[0]
    neg = vm.score([REVIEW_PROMPT], ["a terrible awful boring movie"])[0]
    assert pos > neg + 2.0


def test_save_load_round_trip_gives_identical_scores(trained_minilm_value, tmp_path):
    vm, _ = trained_minilm_value
    prompts = [REVIEW_PROMPT] * 3 + ["Another prompt entirely."]
    partials = ["", "the movie was great", "an awful dreadful plot", "the story was lovely"]
    before = vm.score(prompts, partials)
    d = vm.save(tmp_path / "vm")
    files = {p.name for p in d.iterdir()}
    assert {"value_model.json", "head.safetensors", "backbone", "tokenizer"} <= files
    assert {"train_config.json", "metrics.json"} <= files
    assert (d / "backbone" / "model.safetensors").is_file()
    meta = json.loads((d / "value_model.json").read_text())
    assert (
        meta["weights"] == "full" and meta["pooling"] == "mean" and meta["backbone"] == "minilm-l6"
    )
    assert meta["norm"] == {"mean": vm.norm_mean, "std": vm.norm_std}
    loaded = ValueModel.load(d, device="cpu")
    assert loaded.device.type == "cpu" and not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    assert loaded.train_config["tuning"] == "full" and loaded.metrics["val_mse"] is not None
    after = loaded.score(prompts, partials)
    assert after == pytest.approx(before, abs=1e-5)


def test_bucketed_batches_equal_one_at_a_time(trained_minilm_value):
    vm, _ = trained_minilm_value
    exs = sentiment_examples(11, seed=5)
    prompts = [e.prompt if i % 3 else "Short." for i, e in enumerate(exs)]
    partials = [e.partial[: 3 + 7 * i] for i, e in enumerate(exs)]  # very different lengths
    batched = vm.score(prompts, partials, batch_size=4)
    single = [vm.score([p], [x])[0] for p, x in zip(prompts, partials, strict=True)]
    assert batched == pytest.approx(single, abs=1e-5)
    assert vm.score([], []) == []


def test_input_format_and_left_truncation(trained_minilm_value):
    vm, _ = trained_minilm_value
    assert vm.texts(["Q?"], ["A"]) == ["Q?\nA"]
    tok = vm.tokenizer
    long_prompt = "word " * 500
    ids = vm.encode([long_prompt], ["the very end of the answer"])[0]
    assert len(ids) == vm.max_length == 64
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    end = tok("the very end of the answer", add_special_tokens=False)["input_ids"]
    assert ids[-1 - len(end) : -1] == end  # the response end is kept, the prompt start is cut


def test_head_only_trains_only_the_head(minilm_backbone, tmp_path):
    cfg = ValueTrainConfig(
        model=ValueConfig(backbone=minilm_backbone, max_length=48),
        tuning="head",
        epochs=1,
        batch_size=16,
        val_fraction=0.25,
    )
    fresh = ValueModel.from_config(cfg.model, seed=cfg.seed)
    before = _snapshot(fresh)
    vm, m = train_value_model(
        sentiment_examples(40, seed=1), cfg, progress=False, out_dir=tmp_path / "head"
    )
    assert _changed(before, vm) == {"head.weight", "head.bias"}
    assert m["trainable_params"] == vm.hidden_size + 1
    assert (tmp_path / "head" / "value_model.json").is_file()
    assert vm.train_config["tuning"] == "head" and vm.metrics["val_mse"] == m["val_mse"]


def test_top_layers_mode_trains_head_and_top_blocks_only(minilm_backbone):
    cfg = ValueTrainConfig(
        model=ValueConfig(backbone=minilm_backbone, max_length=48),
        tuning="top",
        top_layers=2,
        epochs=1,
        batch_size=16,
        val_fraction=0.0,
    )
    before = _snapshot(ValueModel.from_config(cfg.model, seed=cfg.seed))
    vm, m = train_value_model(sentiment_examples(32, seed=2), cfg, progress=False)
    changed = _changed(before, vm)
    assert {"head.weight", "head.bias"} <= changed
    assert any(n.startswith("backbone.encoder.layer.5.") for n in changed)
    assert any(n.startswith("backbone.encoder.layer.4.") for n in changed)
    low = ("backbone.embeddings.", *(f"backbone.encoder.layer.{i}." for i in range(4)))
    assert not any(n.startswith(low) for n in changed)
    assert m["n_val"] == 0 and m["val_mse"] is None


def test_lora_trains_adapters_and_head_and_saves_adapters_only(minilm_backbone, tmp_path):
    cfg = ValueTrainConfig(
        model=ValueConfig(backbone=minilm_backbone, max_length=48),
        tuning="lora",
        lora_r=4,
        epochs=1,
        batch_size=16,
        val_fraction=0.0,
    )
    base = _snapshot(ValueModel.from_config(cfg.model, seed=cfg.seed))
    vm, m = train_value_model(sentiment_examples(32, seed=3), cfg, progress=False)
    assert vm.is_lora
    params = dict(vm.named_parameters())
    lora_b = [n for n in params if "lora_B" in n]
    assert lora_b and all(not torch.equal(params[n], torch.zeros_like(params[n])) for n in lora_b)
    assert not torch.equal(params["head.weight"], base["head.weight"])
    # every original backbone weight is untouched (peft moves wrapped ones under base_layer)
    checked = 0
    for n, p in vm.base_backbone.named_parameters():
        if "lora_" not in n:
            assert torch.equal(p, base["backbone." + n.replace(".base_layer", "")]), n
            checked += 1
    assert checked == sum(1 for n in base if n.startswith("backbone."))
    assert m["trainable_params"] < 0.05 * m["total_params"]
    d = vm.save(tmp_path / "lora")
    assert (d / "adapter" / "adapter_model.safetensors").is_file() and not (d / "backbone").exists()
    prompts, partials = [REVIEW_PROMPT] * 2, ["a lovely film", "a dreadful film"]
    loaded = ValueModel.load(d, device="cpu")
    assert loaded.is_lora
    assert loaded.score(prompts, partials) == pytest.approx(vm.score(prompts, partials), abs=1e-5)
    with pytest.raises(ConfigError, match="cannot continue a LoRA value model"):
        train_value_model(
            sentiment_examples(8, seed=3), cfg.replace(tuning="full"), warm_start=vm, progress=False
        )


def test_warm_start_keeps_predictions_under_new_normalisation(trained_minilm_value):
    vm, _ = trained_minilm_value
    shifted = [e._replace(target=10 * e.target + 50) for e in sentiment_examples(24, seed=9)]
    cfg = ValueTrainConfig(
        model=ValueConfig(max_length=64), tuning="head", lr=1e-12, epochs=1, val_fraction=0.0
    )
    probe = ([REVIEW_PROMPT] * 3, ["", "great lovely", "awful sad"])
    before = vm.score(*probe)
    warm, m = train_value_model(shifted, cfg, warm_start=vm, progress=False)
    assert warm is not vm and m["warm_start"] == (vm.path or "in-memory")
    assert (
        warm.norm_mean == pytest.approx(m["norm_mean"]) and abs(warm.norm_mean - vm.norm_mean) > 10
    )
    assert warm.score(*probe) == pytest.approx(before, abs=1e-4)  # same function, new units
    assert vm.score(*probe) == before  # the warm-start model itself is not changed
