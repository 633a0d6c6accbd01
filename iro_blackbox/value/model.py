"""The value model: a transformers backbone plus a scalar head, reading raw text.

    vm = ValueModel.load("iro-runs/my-run/value/t1")           # any folder saved by .save()
    vm.score(["Say hi."], ["Hello"])  -> [0.73]                 # reward units

Input: the exact text `prompt + config.join + partial` (join defaults to "\\n"; the empty partial
gives `prompt + "\\n"`), tokenized by the value model's own tokenizer with its special tokens. A
too-long input is cut from the LEFT, so the start of the prompt goes first and the end of the
partial response is always kept.

Pooling: mean over non-pad tokens (or the first token, "cls") for encoders, the last non-pad token
for decoders. The head outputs a normalised value; `score` de-normalises it with the mean/std of
the training rewards (or applies a sigmoid for BCE-trained models) and returns reward units.

A saved folder holds everything needed to score, so a model trained on a GPU box loads on a CPU
laptop without the original backbone path:

    value_model.json    format, ValueConfig, backbone spec, pooling, normalisation, weights kind
    backbone/           full backbone (config.json + model.safetensors)      [full/head/top]
    adapter/            peft LoRA adapters (the backbone is re-loaded by its spec)     [lora]
    tokenizer/          the tokenizer
    head.safetensors    the scalar head
    train_config.json   ValueTrainConfig (when trained)
    metrics.json        training metrics (when trained)
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import ConfigError, InputError, ModelNotFoundError
from ..models import pick_device, resolve_model
from .config import ValueConfig
from .prefix_cache import score_with_prefix_cache

FORMAT = "iro-bb/value-model"
FORMAT_VERSION = 1
OUTPUTS = ("identity", "sigmoid")


def _is_decoder(hf_config: Any) -> bool:
    """True for decoder-only (causal) backbones, False for encoders (BERT-like)."""
    from transformers.models.auto.modeling_auto import (  # heavy: transformers
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    mt = getattr(hf_config, "model_type", "")
    if mt in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return False
    return mt in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or bool(getattr(hf_config, "is_decoder", False))


def _hidden_size(backbone: nn.Module) -> int:
    cfg = backbone.config
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    for key in ("hidden_size", "n_embd", "d_model", "dim"):
        v = getattr(text, key, None)
        if isinstance(v, int) and v > 0:
            return v
    return int(backbone.get_input_embeddings().embedding_dim)


def _position_limit(hf_config: Any, tokenizer: Any) -> int | None:
    """The longest input the backbone takes (None = no known limit)."""
    limits = []
    for key in ("max_position_embeddings", "n_positions"):
        v = getattr(hf_config, key, None)
        if isinstance(v, int) and v > 0:
            limits.append(v)
    tl = getattr(tokenizer, "model_max_length", None)
    if isinstance(tl, int) and 0 < tl < 1_000_000:
        limits.append(tl)
    return min(limits) if limits else None


def load_backbone(path: str, load_kwargs: dict[str, Any] | None = None) -> nn.Module:
    """AutoModel (no task head) in fp32 on CPU."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers import AutoModel  # heavy: transformers

    try:
        model = AutoModel.from_pretrained(path, dtype=torch.float32, **(load_kwargs or {}))
    except (OSError, ValueError, KeyError) as e:
        raise ModelNotFoundError(f"cannot load value-model backbone from '{path}': {e}") from None
    if getattr(model.config, "is_encoder_decoder", False):
        raise ConfigError(
            f"backbone '{path}' is an encoder-decoder model; use an encoder (BERT-like) or a "
            "decoder (Llama-like) backbone"
        )
    return model


def load_value_tokenizer(path: str, load_kwargs: dict[str, Any] | None = None) -> Any:
    """A private tokenizer instance (not the shared cached one: we change its truncation side)."""
    from transformers import AutoTokenizer  # heavy: transformers

    try:
        tok = AutoTokenizer.from_pretrained(path, **(load_kwargs or {}))
    except (OSError, ValueError, KeyError) as e:
        raise ModelNotFoundError(f"cannot load the tokenizer from '{path}': {e}") from None
    return tok


class ValueModel(nn.Module):
    """Backbone + scalar head. `score(prompts, partials)` gives values in reward units.

    Inference-only instances are cheap to hold several at once: eval mode, no gradients, no
    optimizer state; the only per-model memory is the weights (MiniLM: 22.7M params, ~91 MB fp32).
    """

    def __init__(
        self,
        backbone: nn.Module,
        tokenizer: Any,
        config: ValueConfig,
        *,
        backbone_name: str | None = None,
        pooling: str | None = None,
        norm_mean: float = 0.0,
        norm_std: float = 1.0,
        output: str = "identity",
        train_config: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
    ):
        super().__init__()
        if output not in OUTPUTS:
            raise ConfigError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        self.backbone = backbone
        self.config = config
        self.tokenizer = tokenizer
        base_cfg = self.base_backbone.config
        self.is_decoder = _is_decoder(base_cfg)
        if pooling in (None, "auto"):
            pooling = config.pooling
        if pooling == "auto":
            pooling = "last" if self.is_decoder else "mean"
        self.pooling = pooling
        self.backbone_name = backbone_name or config.backbone
        self.hidden_size = _hidden_size(self.base_backbone)
        self.head = nn.Linear(self.hidden_size, 1)
        self.norm_mean = float(norm_mean)
        self.norm_std = float(norm_std)
        self.output = output
        self.train_config = train_config
        self.metrics = metrics
        self.path: str | None = None  # folder it was saved to / loaded from
        limit = _position_limit(base_cfg, tokenizer)
        self.max_length = min(config.max_length, limit) if limit else config.max_length
        tokenizer.truncation_side = "left"  # keep the end of the response
        tokenizer.padding_side = "right"
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token is not None:
                tokenizer.pad_token = tokenizer.eos_token
            elif tokenizer.unk_token is not None:
                tokenizer.pad_token = tokenizer.unk_token
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_config(
        cls, config: ValueConfig | None = None, *, seed: int = 0, output: str = "identity"
    ) -> ValueModel:
        """A fresh value model on `config.backbone` with a seeded, zero-mean head."""
        config = config or ValueConfig()
        rm = resolve_model(config.backbone)
        backbone = load_backbone(rm.path, rm.load_kwargs())
        tokenizer = load_value_tokenizer(rm.tokenizer_path or rm.path, rm.load_kwargs())
        model = cls(backbone, tokenizer, config, backbone_name=rm.name, output=output)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():  # small init: the untrained model predicts ~ the mean reward
            model.head.weight.copy_(torch.randn(model.head.weight.shape, generator=gen) * 0.02)
            model.head.bias.zero_()
        return model.to(pick_device(config.device))

    def clone(self) -> ValueModel:
        """A deep copy of the weights (the tokenizer is shared)."""
        return copy.deepcopy(self, memo={id(self.tokenizer): self.tokenizer})

    # ---------------------------------------------------------------- properties

    @property
    def is_lora(self) -> bool:
        try:
            from peft import PeftModel  # heavy: peft, only for LoRA models
        except ImportError:  # pragma: no cover - peft is a dependency
            return False
        return isinstance(self.backbone, PeftModel)

    @property
    def base_backbone(self) -> nn.Module:
        """The transformers model under any peft wrapper."""
        if self.is_lora:
            return self.backbone.get_base_model()
        return self.backbone

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    @property
    def name(self) -> str:
        return self.path or f"value:{self.backbone_name}"

    def set_norm(self, mean: float, std: float) -> None:
        self.norm_mean, self.norm_std = float(mean), float(std)

    # ---------------------------------------------------------------- forward

    def texts(self, prompts: Sequence[str], partials: Sequence[str]) -> list[str]:
        """The exact strings the model reads."""
        return [p + self.config.join + x for p, x in zip(prompts, partials, strict=True)]

    def encode(self, prompts: Sequence[str], partials: Sequence[str]) -> list[list[int]]:
        """Token ids of each input, cut from the left to max_length."""
        if len(prompts) != len(partials):
            raise InputError(f"{len(prompts)} prompts but {len(partials)} partials")
        for i, (p, x) in enumerate(zip(prompts, partials, strict=True)):
            if not isinstance(p, str) or not isinstance(x, str):
                raise InputError(f"prompt and partial {i} must be text")
        if not prompts:
            return []
        enc = self.tokenizer(
            self.texts(prompts, partials),
            truncation=True,
            max_length=self.max_length,
            add_special_tokens=True,
        )
        return [list(ids) for ids in enc["input_ids"]]

    def collate(self, seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded (input_ids, attention_mask), both (B, T), on the model's device."""
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, : len(s)] = 1
        return ids.to(self.device), mask.to(self.device)

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, H) token states -> (B, H)."""
        if self.pooling == "cls":
            return hidden[:, 0]
        if self.pooling == "last":
            pos = torch.arange(mask.shape[1], device=mask.device)
            last = (mask * pos).argmax(dim=1)  # index of the last non-pad token, any padding side
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)

    def head_value(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, H) -> (B,) raw head output, computed in fp32 even under autocast."""
        with torch.autocast(device_type=self.device.type, enabled=False):
            return self.head(pooled.float()).squeeze(-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) ids and mask -> (B,) raw values (normalised units, or logits for BCE)."""
        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.is_decoder:
            kwargs["use_cache"] = False
        hidden = self.backbone(**kwargs).last_hidden_state  # (B, T, H)
        return self.head_value(self.pool(hidden, attention_mask))

    def to_reward(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw head output -> reward units."""
        if self.output == "sigmoid":
            return torch.sigmoid(raw.float())
        return raw.float() * self.norm_std + self.norm_mean

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA, nothing on CPU (fp32): training and validation."""
        if self.device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def scoring_autocast(self) -> contextlib.AbstractContextManager:
        """Like autocast, and bf16 on CPU too when config.precision is "bf16" (scoring only)."""
        if self.device.type == "cpu" and self.config.precision == "bf16":
            return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
        return self.autocast()

    @torch.inference_mode()
    def score_ids(self, seqs: Sequence[Sequence[int]], batch_size: int = 64) -> list[float]:
        """Values (reward units) of already-encoded inputs, batched by length buckets: sorted by
        length, padded per batch, returned in the input order."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        n = len(seqs)
        out = [0.0] * n
        order = sorted(range(n), key=lambda i: len(seqs[i]))
        was_training = self.training
        self.eval()
        try:
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                ids, mask = self.collate([seqs[i] for i in idx])
                with self.scoring_autocast():
                    raw = self(ids, mask)
                for i, v in zip(idx, self.to_reward(raw).tolist(), strict=True):
                    out[i] = float(v)
        finally:
            self.train(was_training)
        return out

    def score(
        self, prompts: Sequence[str], partials: Sequence[str], batch_size: int = 64
    ) -> list[float]:
        """V(prompt, partial) for each pair, in reward units. Decoder backbones reuse the KV
        cache of a shared token prefix where it pays (see prefix_cache.py)."""
        seqs = self.encode(list(prompts), list(partials))
        if not seqs:
            return []
        if self.is_decoder and not self.is_lora:
            return score_with_prefix_cache(self, seqs, batch_size=batch_size)
        return self.score_ids(seqs, batch_size=batch_size)

    # ---------------------------------------------------------------- save / load

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model folder (see the module docstring). Returns the folder."""
        d = Path(path)
        d.mkdir(parents=True, exist_ok=True)
        kind = "lora" if self.is_lora else "full"
        if kind == "lora":
            self.backbone.save_pretrained(str(d / "adapter"))
        else:
            self.backbone.save_pretrained(str(d / "backbone"))
        self.tokenizer.save_pretrained(str(d / "tokenizer"))
        head = {k: v.detach().float().cpu().contiguous() for k, v in self.head.state_dict().items()}
        save_file(head, str(d / "head.safetensors"))
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "weights": kind,
            "backbone": self.config.backbone,
            "backbone_name": self.backbone_name,
            "model_type": getattr(self.base_backbone.config, "model_type", None),
            "pooling": self.pooling,
            "hidden_size": self.hidden_size,
            "max_length": self.max_length,
            "output": self.output,
            "norm": {"mean": self.norm_mean, "std": self.norm_std},
            "config": self.config.to_dict(),
        }
        _write_json(d / "value_model.json", meta)
        if self.train_config is not None:
            _write_json(d / "train_config.json", self.train_config)
        if self.metrics is not None:
            _write_json(d / "metrics.json", self.metrics)
        self.path = str(d)
        return d

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        device: str = "auto",
        backbone: str | None = None,
        precision: str | None = None,
    ) -> ValueModel:
        """Load a saved folder onto `device` ("auto": cuda when available, else cpu), whatever
        device it was trained on. `backbone` overrides the backbone spec of a LoRA model (its
        adapters need the base weights) when the saved spec does not resolve here; `precision`
        the CPU scoring precision (see ValueConfig)."""
        d = Path(path)
        meta_file = d / "value_model.json"
        if not meta_file.is_file():
            raise ModelNotFoundError(f"{d} is not a saved value model (no value_model.json)")
        try:
            meta = json.loads(meta_file.read_text())
        except json.JSONDecodeError as e:
            raise ModelNotFoundError(f"{meta_file} is not valid JSON: {e}") from None
        if meta.get("format") != FORMAT:
            raise ModelNotFoundError(
                f"{d} is not a saved value model (format {meta.get('format')!r})"
            )
        if int(meta.get("format_version", 0)) > FORMAT_VERSION:
            raise ModelNotFoundError(
                f"{d} was saved by a newer iro-bb (value-model format {meta['format_version']}); "
                "upgrade iro-bb"
            )
        config = ValueConfig.from_dict(meta["config"]).replace(device=device)
        if precision is not None:
            config = config.replace(precision=precision)
        tokenizer = load_value_tokenizer(str(d / "tokenizer"))
        if meta["weights"] == "lora":
            from peft import PeftModel  # heavy: peft, only for LoRA models

            spec = backbone or meta["backbone"]
            rm = resolve_model(spec)
            base = load_backbone(rm.path, rm.load_kwargs())
            net = PeftModel.from_pretrained(base, str(d / "adapter"), is_trainable=False)
            if backbone:
                config = config.replace(backbone=backbone)
        else:
            net = load_backbone(str(d / "backbone"))
        model = cls(
            net,
            tokenizer,
            config,
            backbone_name=meta.get("backbone_name"),
            pooling=meta.get("pooling"),
            norm_mean=meta["norm"]["mean"],
            norm_std=meta["norm"]["std"],
            output=meta.get("output", "identity"),
            train_config=_read_json(d / "train_config.json"),
            metrics=_read_json(d / "metrics.json"),
        )
        model.head.load_state_dict(load_file(str(d / "head.safetensors"), device="cpu"))
        model.path = str(d)
        model.eval().requires_grad_(False)
        return model.to(pick_device(device))


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str, allow_nan=False))


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None
