"""Training a value model (IRO step 3): fit V(x, y_<=i) to the final reward r(x, y).

    examples = make_value_examples(rollouts, cfg)
    vm, metrics = train_value_model(examples, cfg, warm_start=previous_vm, out_dir="run/value/t2")

Objectives (config.loss): MSE on rewards normalised by the training targets' mean/std (stored
with the model); BCE for rewards in [0, 1]; `centered`, MSE on the reward minus its prompt's mean
reward; `pairwise`, Bradley-Terry over prefixes of the same prompt at the same position (batches
hold whole prompt-position groups) plus a light centered regression. Validation reports, beside
the MSE ratio, what the search needs: within-prompt pair ranking accuracy, Kendall tau-b, both by
prefix position, and a reliability curve (value/ranking.py). Validation holds out whole rollouts (or whole prompts), so prefixes of one
response never sit on both sides; early stopping restores the best weights. AdamW, seeded.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..errors import ConfigError, InputError
from ..models import pick_device
from .config import ValueTrainConfig
from .data import ValueExample, split_examples
from .model import ValueModel
from .ranking import calibration, centered_targets, pair_groups, pairwise_loss, ranking_metrics
from .tuning import apply_tuning, trainable_parameters

MEGA_BATCH = 50  # batches sorted by length together (less padding, still shuffled)


def as_example(item: Any, index: int) -> ValueExample:
    """A ValueExample from a ValueExample, a (prompt, partial, target[, weight[, rollout[,
    position[, origin]]]]) tuple."""
    if isinstance(item, ValueExample):
        ex = item
    elif isinstance(item, (tuple, list)) and 3 <= len(item) <= 7:
        ex = ValueExample(*item)
    else:
        raise InputError(
            f"example {index}: expected (prompt, partial, target[, weight[, rollout[, position"
            "[, origin]]]]), "
            f"got {item!r}"
        )
    if not isinstance(ex.prompt, str) or not isinstance(ex.partial, str):
        raise InputError(f"example {index}: prompt and partial must be text")
    t, w = ex.target, ex.weight
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
        raise InputError(f"example {index}: target must be a finite number, got {t!r}")
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0 or not math.isfinite(w):
        raise InputError(f"example {index}: weight must be a finite number >= 0, got {w!r}")
    return ValueExample(
        ex.prompt, ex.partial, float(t), float(w), int(ex.rollout), int(ex.position), int(ex.origin)
    )


def _weighted_mean_std(values: Sequence[float], weights: Sequence[float]) -> tuple[float, float]:
    total = sum(weights)
    if total <= 0:
        weights, total = [1.0] * len(values), float(len(values))
    mean = sum(v * w for v, w in zip(values, weights, strict=True)) / total
    var = sum(w * (v - mean) ** 2 for v, w in zip(values, weights, strict=True)) / total
    return mean, math.sqrt(var)


def _batches(
    indices: list[int], lengths: list[int], size: int, rng: random.Random
) -> list[list[int]]:
    """Shuffled batches; inside each mega-batch rows are sorted by length to cut padding."""
    idx = list(indices)
    rng.shuffle(idx)
    out: list[list[int]] = []
    mega = size * MEGA_BATCH
    for s in range(0, len(idx), mega):
        chunk = sorted(idx[s : s + mega], key=lambda i: lengths[i])
        out.extend(chunk[j : j + size] for j in range(0, len(chunk), size))
    rng.shuffle(out)
    return out


def _group_batches(
    indices: list[int], groups: list[int], size: int, rng: random.Random
) -> list[list[int]]:
    """Shuffled batches of whole prompt-position groups (pairs never straddle two batches); a
    group larger than `size` is a batch of its own."""
    members: dict[int, list[int]] = {}
    for i in indices:
        members.setdefault(groups[i], []).append(i)
    order = list(members.values())
    rng.shuffle(order)
    out: list[list[int]] = []
    cur: list[int] = []
    for rows in order:
        if cur and len(cur) + len(rows) > size:
            out.append(cur)
            cur = []
        cur.extend(rows)
    if cur:
        out.append(cur)
    return out


def _loss(
    raw: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor,
    kind: str,
    group: torch.Tensor | None = None,
    anchor: float = 0.1,
) -> torch.Tensor:
    if kind == "bce":
        per = torch.nn.functional.binary_cross_entropy_with_logits(raw, target, reduction="none")
        return (per * weight).sum() / weight.sum().clamp(min=1e-12)
    mse = (((raw - target) ** 2) * weight).sum() / weight.sum().clamp(min=1e-12)
    if kind != "pairwise":
        return mse
    assert group is not None
    bt = pairwise_loss(raw, target, weight, group)
    return anchor * mse if bt is None else bt + anchor * mse


def _pearson(x: Sequence[float], y: Sequence[float], w: Sequence[float]) -> float | None:
    mx, sx = _weighted_mean_std(x, w)
    my, sy = _weighted_mean_std(y, w)
    if sx == 0 or sy == 0:
        return None
    total = sum(w) or float(len(w))
    cov = sum(wi * (a - mx) * (b - my) for a, b, wi in zip(x, y, w, strict=True)) / total
    return cov / (sx * sy)


def _clean(obj: Any) -> Any:
    """JSON-safe metrics: NaN/inf become None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


@torch.no_grad()
def _evaluate(
    model: ValueModel,
    seqs: list[list[int]],
    idx: list[int],
    raw_targets: torch.Tensor,
    targets: list[float],
    weights: list[float],
    constant: float,
    config: ValueTrainConfig,
    groups: list[int],
    positions: list[int],
    inputs: list[str],
) -> dict[str, Any]:
    """Validation loss (training units), MSE / Pearson r in the fitted targets' units (rewards, or
    rewards centred per prompt), and within-group ranking (value/ranking.py)."""
    model.eval()
    order = sorted(idx, key=lambda i: len(seqs[i]))
    raws: dict[int, float] = {}
    for s in range(0, len(order), config.eval_batch_size):
        rows = order[s : s + config.eval_batch_size]
        ids, mask = model.collate([seqs[i] for i in rows])
        with model.autocast():
            raw = model(ids, mask).float()
        raws.update(zip(rows, raw.tolist(), strict=True))
    raw_t = torch.tensor([raws[i] for i in idx])
    w = [weights[i] for i in idx]
    y = [targets[i] for i in idx]
    g = torch.tensor([groups[i] for i in idx])
    loss = _loss(
        raw_t, raw_targets[idx], torch.tensor(w), config.loss, g, config.pairwise_anchor
    ).item()
    pred = model.to_reward(raw_t).tolist()
    total = sum(w) or float(len(w))
    mse = sum(wi * (p - t) ** 2 for p, t, wi in zip(pred, y, w, strict=True)) / total
    const = sum(wi * (constant - t) ** 2 for t, wi in zip(y, w, strict=True)) / total
    rank = ranking_metrics(
        pred,
        y,
        [groups[i] for i in idx],
        [positions[i] for i in idx],
        [inputs[i] for i in idx],
    )
    return {
        "val_loss": loss,
        "val_mse": mse,
        "val_mse_constant": const,
        "val_mse_ratio": mse / const if const > 0 else None,
        "val_pearson": _pearson(pred, y, w),
        "val_pairwise_accuracy": rank["accuracy"],
        "val_kendall_tau": rank["kendall_tau"],
        "val_pairs": rank["pairs"],
        "val_ranking_by_position": rank["by_position"],
        "val_calibration": calibration(pred, y),
    }


_DETAIL = ("val_ranking_by_position", "val_calibration")  # kept for the best epoch only


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]value[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
    )


def _adamw(groups: list[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
    """AdamW, fused where torch supports it (about 10x faster steps on CPU)."""
    groups = [g for g in groups if g["params"]]
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=lr)


def _rescale_head(model: ValueModel, mean: float, std: float) -> None:
    """Keep a warm-started model's predictions (reward units) while switching to a new norm."""
    with torch.no_grad():
        model.head.weight.mul_(model.norm_std / std)
        model.head.bias.copy_((model.head.bias * model.norm_std + model.norm_mean - mean) / std)
    model.set_norm(mean, std)


def train_value_model(
    examples: Iterable[Any],
    config: ValueTrainConfig | None = None,
    warm_start: ValueModel | None = None,
    progress: bool = True,
    out_dir: str | Path | None = None,
) -> tuple[ValueModel, dict[str, Any]]:
    """Train a value model on (prompt, partial, target, weight[, rollout]) examples.

    warm_start: continue from this model (it is copied, never changed); its backbone, pooling and
    input format win over config.model. out_dir: save the trained model there. Returns the model
    (eval mode, no gradients) and its metrics.
    """
    config = config or ValueTrainConfig()
    exs = [as_example(e, i) for i, e in enumerate(examples)]
    if not exs:
        raise InputError("no value-model training examples")
    weights = [e.weight for e in exs]
    groups = pair_groups(exs)
    positions = [e.position for e in exs]
    partials = [e.partial for e in exs]
    # what V_t is fitted to: the reward, or (centered, pairwise) the reward minus its prompt's
    # mean, which selection never uses (a per-prompt constant cancels in the tilt)
    centered = config.loss in ("centered", "pairwise")
    targets = centered_targets(exs) if centered else [e.target for e in exs]
    if config.loss == "bce" and not all(0.0 <= y <= 1.0 for y in targets):
        bad = next(y for y in targets if not 0.0 <= y <= 1.0)
        raise ConfigError(f"loss='bce' needs rewards in [0, 1], got a target of {bad}")
    output = "sigmoid" if config.loss == "bce" else "identity"
    if warm_start is not None and warm_start.output != output:
        raise ConfigError(
            f"loss={config.loss!r} cannot warm start from a model trained with "
            f"{'bce' if warm_start.output == 'sigmoid' else 'mse'}"
        )
    device = pick_device(config.model.device)
    cuda = [torch.device(device)] if device.startswith("cuda") else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(config.seed)
        train_idx, val_idx, split_by = split_examples(exs, config)
        if not train_idx:
            raise InputError(
                "no training examples left after holding out the validation split (every "
                "example is a held-out answer or a relabelled copy of one): lower val_fraction"
            )
        if sum(weights[i] for i in train_idx) <= 0:
            raise InputError("every training example has weight 0")
        if output == "identity":
            mean, std = _weighted_mean_std(
                [targets[i] for i in train_idx], [weights[i] for i in train_idx]
            )
            std = std if std > 1e-8 else 1.0
        else:
            mean, std = 0.0, 1.0
        constant = _weighted_mean_std(
            [targets[i] for i in train_idx], [weights[i] for i in train_idx]
        )[0]

        if warm_start is not None:
            model = warm_start.clone().to(device)
            model.path = None  # not saved yet
            if output == "identity":
                _rescale_head(model, mean, std)
        else:
            model = ValueModel.from_config(config.model, seed=config.seed, output=output).to(device)
            model.set_norm(mean, std)
        apply_tuning(model, config)
        params = trainable_parameters(model)
        n_total = sum(p.numel() for p in model.parameters())
        n_trainable = sum(p.numel() for p in params.values())

        seqs = model.encode([e.prompt for e in exs], [e.partial for e in exs])
        lengths = [len(s) for s in seqs]
        raw_targets = torch.tensor(
            [(y - mean) / std if output == "identity" else y for y in targets], dtype=torch.float32
        )
        w_all = torch.tensor(weights, dtype=torch.float32)
        g_all = torch.tensor(groups, dtype=torch.long)

        decay = [p for n, p in params.items() if p.ndim >= 2]
        no_decay = [p for n, p in params.items() if p.ndim < 2]
        opt = _adamw(
            [
                {"params": decay, "weight_decay": config.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            config.learning_rate,
        )
        steps_per_epoch = (
            len(_group_batches(train_idx, groups, config.batch_size, random.Random(0)))
            if config.loss == "pairwise"
            else math.ceil(len(train_idx) / config.batch_size)
        )
        total_steps = steps_per_epoch * config.epochs
        warmup = int(config.warmup_ratio * total_steps)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warmup) if warmup > 0 else 1.0
        )
        rng = random.Random(config.seed)

        history: list[dict[str, Any]] = []
        best: dict[str, Any] | None = None
        best_state: dict[str, torch.Tensor] | None = None
        bad_epochs = 0
        seen = 0
        train_seconds = 0.0
        stopped_early = False
        with _progress(progress) as bar:
            task = bar.add_task("epoch 1", total=total_steps)
            for epoch in range(1, config.epochs + 1):
                model.train()
                t0 = time.perf_counter()
                loss_sum, loss_n = 0.0, 0
                batches = (
                    _group_batches(train_idx, groups, config.batch_size, rng)
                    if config.loss == "pairwise"
                    else _batches(train_idx, lengths, config.batch_size, rng)
                )
                for rows in batches:
                    ids, mask = model.collate([seqs[i] for i in rows])
                    y = raw_targets[rows].to(model.device)
                    w = w_all[rows].to(model.device)
                    g = g_all[rows].to(model.device)
                    with model.autocast():
                        raw = model(ids, mask)
                    loss = _loss(raw.float(), y, w, config.loss, g, config.pairwise_anchor)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if config.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(list(params.values()), config.grad_clip)
                    opt.step()
                    sched.step()
                    seen += len(rows)
                    loss_sum += loss.item() * len(rows)
                    loss_n += len(rows)
                    bar.update(
                        task,
                        advance=1,
                        description=f"epoch {epoch}/{config.epochs} loss {loss_sum / loss_n:.4f}",
                    )
                train_seconds += time.perf_counter() - t0
                row: dict[str, Any] = {"epoch": epoch, "train_loss": loss_sum / max(loss_n, 1)}
                if val_idx:
                    row.update(
                        _evaluate(
                            model,
                            seqs,
                            val_idx,
                            raw_targets,
                            targets,
                            weights,
                            constant,
                            config,
                            groups,
                            positions,
                            partials,
                        )
                    )
                    bar.update(
                        task,
                        description=f"epoch {epoch}/{config.epochs} loss {row['train_loss']:.4f} "
                        f"val {row['val_loss']:.4f}",
                    )
                history.append(row)
                if not val_idx:
                    continue
                if best is None or row["val_loss"] < best["val_loss"] - config.min_delta:
                    best = dict(row)
                    best_state = {n: p.detach().clone() for n, p in params.items()}
                    bad_epochs = 0
                else:
                    bad_epochs += 1
                    if config.patience and bad_epochs >= config.patience:
                        stopped_early = epoch < config.epochs
                        break

    if best_state is not None:
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(best_state[n])
    final = best if best is not None else history[-1]
    metrics: dict[str, Any] = {
        "n_examples": len(exs),
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        "split_by": split_by,
        "epochs_run": len(history),
        "best_epoch": final["epoch"],
        "stopped_early": stopped_early,
        "train_loss": history[-1]["train_loss"],
        "best_train_loss": final["train_loss"],
        "val_loss": final.get("val_loss"),
        "val_mse": final.get("val_mse"),
        "val_mse_constant": final.get("val_mse_constant"),
        "val_mse_ratio": final.get("val_mse_ratio"),
        "val_pearson": final.get("val_pearson"),
        "val_pairwise_accuracy": final.get("val_pairwise_accuracy"),
        "val_kendall_tau": final.get("val_kendall_tau"),
        "val_pairs": final.get("val_pairs"),
        "val_ranking_by_position": final.get("val_ranking_by_position"),
        "val_calibration": final.get("val_calibration"),
        "targets": "centered per prompt" if centered else "reward",
        "samples_per_s": seen / train_seconds if train_seconds > 0 else None,
        "train_seconds": train_seconds,
        "trainable_params": n_trainable,
        "total_params": n_total,
        "lr": config.learning_rate,
        "tuning": config.tuning,
        "loss": config.loss,
        "norm_mean": mean,
        "norm_std": std,
        "constant_prediction": constant,
        "device": str(model.device),
        "warm_start": (warm_start.path or "in-memory") if warm_start is not None else None,
        "history": [{k: v for k, v in r.items() if k not in _DETAIL} for r in history],
    }
    metrics = _clean(metrics)
    model.eval().requires_grad_(False)
    model.metrics = metrics
    train_dict = config.to_dict()
    train_dict["model"] = model.config.to_dict()  # a warm start's model config is what was used
    model.train_config = train_dict
    if out_dir is not None:
        model.save(out_dir)
    return model, metrics
