"""Configs of the value model: what the model is (ValueConfig) and how it is trained
(ValueTrainConfig). Both are saved as JSON with every checkpoint. Errors name the field and the
bad value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError
from ..utils import dataclass_from_dict

TUNINGS = ("full", "head", "top", "lora")
LOSSES = ("mse", "bce", "centered", "pairwise")
PREFIX_MODES = ("chunk", "token", "random")
POOLINGS = ("auto", "mean", "cls", "last")
SPLITS = ("auto", "prompt", "rollout")
PRECISIONS = ("fp32", "bf16")

# learning rate used when ValueTrainConfig.lr is None, per tuning mode
DEFAULT_LR = {"full": 5e-5, "top": 1e-4, "head": 1e-3, "lora": 5e-4}


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _check_number(name: str, value: Any, lo: float, hi: float, lo_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = (value > lo if lo_open else value >= lo) and value <= hi
    if not ok:
        left = "(" if lo_open else "["
        raise ConfigError(f"{name} must be a number in {left}{lo}, {hi}], got {value!r}")


@dataclass(frozen=True)
class ValueConfig:
    """What a value model is: backbone, pooling, input format. Saved with the model."""

    # backbone: alias (minilm-l6), local transformers folder, .gguf file or hub id; any encoder
    # (BERT-like) or decoder (Llama-like) model that AutoModel loads
    backbone: str = "minilm-l6"
    # how token states become one vector: "mean" (over non-pad tokens) or "cls" (first token) for
    # encoders, "last" (last non-pad token) for decoders; "auto" picks mean for encoders and
    # last for decoders
    pooling: str = "auto"
    # token budget of the model input; longer inputs are cut from the LEFT (start of the prompt
    # first) so the end of the partial response is always kept; capped by the backbone's limit
    max_length: int = 512
    # the exact text placed between the prompt and the partial response: the model reads
    # prompt + join + partial (also for the empty partial)
    join: str = "\n"
    # "auto" (cuda when available, else cpu), "cpu", "cuda", "cuda:1", ...; on CUDA the forward
    # pass runs under bf16 autocast, on CPU in fp32 (see precision)
    device: str = "auto"
    # scoring on CPU: "fp32", or "bf16" (autocast; about 3x faster where the CPU has AVX-512
    # BF16 or AMX, scores differ in the third decimal). Training always runs in fp32 on CPU.
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if not isinstance(self.backbone, str) or not self.backbone.strip():
            raise ConfigError(f"backbone must be a model name or path, got {self.backbone!r}")
        _check_choice("pooling", self.pooling, POOLINGS)
        _check_int("max_length", self.max_length, 8)
        if not isinstance(self.join, str):
            raise ConfigError(f"join must be a string, got {self.join!r}")
        if not isinstance(self.device, str) or not self.device:
            raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")
        _check_choice("precision", self.precision, PRECISIONS)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValueConfig:
        return dataclass_from_dict(cls, data, "value model config")

    def replace(self, **changes: Any) -> ValueConfig:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ValueTrainConfig:
    """How a value model is trained (and which prefixes it is trained on). Saved with the model."""

    model: ValueConfig = field(default_factory=ValueConfig)  # the model to build (or warm start)
    # what is trained: "full" (every weight), "head" (frozen backbone, scalar head only),
    # "top" (head + the top `top_layers` transformer layers + final norm), "lora" (peft LoRA
    # adapters on the backbone + head)
    tuning: str = "full"
    top_layers: int = 2  # layers trained by tuning="top", counted from the output side
    lora_r: int = 8  # LoRA rank (tuning="lora")
    lora_alpha: int = 16  # LoRA scaling alpha (tuning="lora")
    lora_dropout: float = 0.05  # dropout on the LoRA path (tuning="lora")
    # module names LoRA wraps; None = peft's default for the architecture, else every linear layer
    lora_target_modules: tuple[str, ...] | None = None
    lr: float | None = None  # AdamW learning rate; None = 5e-5 full, 1e-4 top, 1e-3 head, 5e-4 lora
    weight_decay: float = 0.01  # AdamW weight decay
    epochs: int = 3  # maximum passes over the training prefixes (early stopping may end sooner)
    batch_size: int = 32  # prefixes per optimisation step
    eval_batch_size: int = 64  # prefixes per forward pass when validating
    grad_clip: float = 1.0  # max gradient norm; 0 turns clipping off
    warmup_ratio: float = 0.0  # fraction of the steps with a linear learning-rate warmup
    # "mse" (regression on normalised rewards); "bce" (rewards in [0, 1], e.g. pass/fail; the
    # model then outputs a probability); "centered" (regression on the reward minus the mean
    # reward of that prompt's rollouts: what the search compares, a per-prompt constant cancels
    # in pi_t ∝ pi_{t-1} exp(V_t/beta)); "pairwise" (Bradley-Terry over prefixes of the same
    # prompt at the same position, weighted by their reward gap, plus the centered regression at
    # `pairwise_anchor` weight so V_t stays in reward units and beta keeps its meaning)
    loss: str = "mse"
    pairwise_anchor: float = 0.1  # loss="pairwise": weight of the centered regression term
    # which prefixes of each response become training examples (the empty and the full response
    # are always included): "chunk" (every `chunk_tokens` tokens of the value tokenizer),
    # "token" (every token), "random" (`k_random` random cut points)
    prefix_mode: str = "chunk"
    chunk_tokens: int = 16  # prefix_mode="chunk": tokens per chunk (the search's L is a good pick)
    k_random: int = 4  # prefix_mode="random": random interior cut points per response
    val_fraction: float = 0.1  # share of rollouts (or prompts) held out for validation; 0 = none
    # how the validation split groups examples: "prompt" (all rollouts of a prompt on one side),
    # "rollout" (all prefixes of one response on one side), "auto" (prompt when there are at least
    # 20 distinct prompts, else rollout)
    split_by: str = "auto"
    patience: int = (
        2  # epochs without validation improvement before stopping (0 = never stop early)
    )
    min_delta: float = 0.0  # smallest validation-loss drop that counts as an improvement
    seed: int = 0  # seeds the head init, LoRA init, dropout, shuffling, split and random cuts

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", ValueConfig.from_dict(self.model))
        if not isinstance(self.model, ValueConfig):
            raise ConfigError(f"model must be a ValueConfig, got {type(self.model).__name__}")
        if isinstance(self.lora_target_modules, (list, str)):
            mods = self.lora_target_modules
            object.__setattr__(
                self, "lora_target_modules", (mods,) if isinstance(mods, str) else tuple(mods)
            )
        _check_choice("tuning", self.tuning, TUNINGS)
        _check_int("top_layers", self.top_layers, 0)
        _check_int("lora_r", self.lora_r, 1)
        _check_int("lora_alpha", self.lora_alpha, 1)
        _check_number("lora_dropout", self.lora_dropout, 0.0, 0.9)
        if self.lora_target_modules is not None and not all(
            isinstance(m, str) and m for m in self.lora_target_modules
        ):
            raise ConfigError(
                f"lora_target_modules must be a list of module names, got {self.lora_target_modules!r}"
            )
        if self.lr is not None:
            _check_number("lr", self.lr, 0.0, 1.0, lo_open=True)
        _check_number("weight_decay", self.weight_decay, 0.0, 1.0)
        _check_int("epochs", self.epochs, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("eval_batch_size", self.eval_batch_size, 1)
        _check_number("grad_clip", self.grad_clip, 0.0, 1e6)
        _check_number("warmup_ratio", self.warmup_ratio, 0.0, 1.0)
        _check_choice("loss", self.loss, LOSSES)
        _check_number("pairwise_anchor", self.pairwise_anchor, 0.0, 100.0)
        _check_choice("prefix_mode", self.prefix_mode, PREFIX_MODES)
        _check_int("chunk_tokens", self.chunk_tokens, 1)
        _check_int("k_random", self.k_random, 0)
        _check_number("val_fraction", self.val_fraction, 0.0, 0.9)
        _check_choice("split_by", self.split_by, SPLITS)
        _check_int("patience", self.patience, 0)
        _check_number("min_delta", self.min_delta, 0.0, 1e6)
        _check_int("seed", self.seed, 0)

    @property
    def learning_rate(self) -> float:
        """The learning rate in use: `lr`, or the default of the tuning mode."""
        return float(self.lr) if self.lr is not None else DEFAULT_LR[self.tuning]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.lora_target_modules is not None:
            d["lora_target_modules"] = list(self.lora_target_modules)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValueTrainConfig:
        return dataclass_from_dict(cls, data, "value training config")

    def replace(self, **changes: Any) -> ValueTrainConfig:
        return dataclasses.replace(self, **changes)
