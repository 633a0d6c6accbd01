"""The value trainer the IRO loop uses by default: the value package's backbone + scalar head,
trained as the run's ValueOptions say (IRO step 3), saved in the run folder.

Any object with the same two methods can stand in (tests inject a recording one):

    trainer.train(rollouts, t=t, warm_start=v_prev, out_dir=path) -> (model, metrics, config)
    trainer.load(path) -> model
    trainer.rank(model, rollouts, t=t) -> ranking metrics   (optional: held-out measurement)
    trainer.gate(previous, betas, model, beta, rollouts, t=t) -> {"accepted": ...}   (optional)
    trainer.for_worker(device) -> trainer   (optional: its form on a cluster worker)

With `--executor ray` the trainer itself is pickled to the worker that trains V_t, so it must be
picklable (a module-level class; its attributes plain data).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Protocol

from ..value import RolloutData, load_saved, make_value_examples, train_value_model
from ..value.data import split_examples
from ..value.ranking import heldout_ranking, rank_examples
from ..value.twotower import (
    TwoTowerConfig,
    save_two_tower,
    shared_towers,
    train_two_tower,
)
from .config import AlignConfig
from .gate import gate_check, validation_rollouts


class ValueTrainer(Protocol):
    """How the loop trains and loads value models."""

    def train(
        self, rollouts: Sequence[RolloutData], *, t: int, warm_start: Any, out_dir: Path
    ) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        """V_t from (prompt, response, reward, weight) rollouts, saved in out_dir: (model,
        metrics, the training config as recorded)."""
        ...

    def load(self, path: str) -> Any: ...


class DefaultValueTrainer:
    """Prefixes cut every L tokens of the value tokenizer; seed = run seed + t."""

    def __init__(self, cfg: AlignConfig, progress: bool = True):
        self.cfg = cfg
        self.progress = progress

    def for_worker(self, device: str | None) -> DefaultValueTrainer:
        """This trainer as a cluster worker runs it: on `device` (the worker's GPU) unless the run
        names a device, and without a progress bar (nobody watches a worker's terminal)."""
        worker = copy.copy(self)  # a subclass stays itself
        if device and not self.cfg.provider.device:
            worker.cfg = replace(self.cfg, provider=replace(self.cfg.provider, device=device))
        worker.progress = False
        return worker

    def _train_config(self, t: int) -> Any:
        return self.cfg.value.train_config(
            seed=self.cfg.run.seed + t,
            chunk_tokens=self.cfg.search.l,
            device=self.cfg.provider.device,
        )

    def train(
        self, rollouts: Sequence[RolloutData], *, t: int, warm_start: Any, out_dir: Path
    ) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        tcfg = self._train_config(t)
        if self.cfg.value.value_model == "twotower":
            return self._train_two_tower(rollouts, tcfg, out_dir)
        examples = make_value_examples(rollouts, tcfg)
        model, metrics = train_value_model(
            examples, tcfg, warm_start=warm_start, progress=self.progress, out_dir=out_dir
        )
        return model, metrics, model.train_config

    def _tower_config(self, seed: int) -> TwoTowerConfig:
        v = self.cfg.value
        return TwoTowerConfig(
            backbone=v.tower_backbone,
            answer_layers=v.answer_layers,
            loss=v.value_loss,
            seed=seed,
            heads=v.value_heads,
        )

    def _train_two_tower(
        self, rollouts: Sequence[RolloutData], tcfg: Any, out_dir: Path
    ) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        """The head fit on the training split; validation measured on the held-apart prompts
        (the same split the gate checks)."""
        cfg = self._tower_config(tcfg.seed)
        towers = shared_towers(cfg.backbone, cfg.prompt_layer, cfg.answer_layers)
        examples = make_value_examples(rollouts, tcfg, tokenizer=towers.tokenizer)
        train_idx, val_idx, split_by = split_examples(examples, tcfg)
        t0 = time.perf_counter()
        # the validation prompts (the gate's) are never fit in any way
        fit, stop = list(train_idx), []
        if cfg.select != "last":  # the stopping point is picked on a slice of the training part
            inner = [examples[i] for i in train_idx]
            f, s, _ = split_examples(inner, tcfg.replace(seed=tcfg.seed + 7919))
            fit, stop = [train_idx[i] for i in f], [train_idx[i] for i in s]
        model = train_two_tower(examples, rollouts, fit, cfg, stop)
        metrics: dict[str, Any] = {
            "n_examples": len(examples),
            "n_train": len(train_idx),
            "n_val": len(val_idx),
            "split_by": split_by,
            "train_seconds": round(time.perf_counter() - t0, 1),
        }
        if val_idx:
            val = [examples[i] for i in val_idx]
            m = rank_examples(model, val, [r.response for r in rollouts])
            metrics.update(
                val_pairwise_accuracy=m["accuracy"],
                val_kendall_tau=m["kendall_tau"],
                val_pairs=m["pairs"],
                val_ranking_by_position=m["by_position"],
            )
        save_two_tower(model, cfg, out_dir)
        return model, metrics, {**tcfg.to_dict(), "value_model": "twotower", **asdict(cfg)}

    def rank(self, model: Any, rollouts: Sequence[RolloutData], *, t: int) -> dict[str, Any]:
        """How V_t ranks graded answers of held-out prompts (value/ranking.py), its prefixes cut
        as for its training."""
        return heldout_ranking(model, rollouts, self._train_config(t))

    def gate(
        self,
        previous: Sequence[Any],
        betas: Sequence[float],
        model: Any,
        beta: float,
        rollouts: Sequence[RolloutData],
        *,
        t: int,
    ) -> dict[str, Any]:
        """Should V_t steer? Checked on the answers V_t's training held apart for validation
        (iro/gate.py): pi_{t-1}'s own samples of its validation prompts, never a relabelled copy
        (value/data.py split_examples)."""
        tcfg = self._train_config(t)
        val = validation_rollouts(rollouts, tcfg, model.tokenizer)
        return gate_check(previous, betas, model, beta, val, tcfg)

    def load(self, path: str) -> Any:
        return load_saved(
            path,
            device=self.cfg.provider.device or "auto",
            precision=self.cfg.value.value_precision,
        )
