"""Which weights a value model trains: full, head only, head + top layers, or LoRA (peft)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import ConfigError
from .config import ValueTrainConfig

if TYPE_CHECKING:
    from .model import ValueModel


def layer_stack(backbone: nn.Module) -> tuple[str, nn.ModuleList]:
    """The transformer blocks: the longest ModuleList (encoder.layer, layers, h, ...)."""
    best: tuple[str, nn.ModuleList] | None = None
    for name, module in backbone.named_modules():
        if isinstance(module, nn.ModuleList) and (best is None or len(module) > len(best[1])):
            best = (name, module)
    if best is None or len(best[1]) == 0:
        raise ConfigError(
            f"tuning='top' cannot find the transformer layers of {type(backbone).__name__}"
        )
    return best


def _lora_targets(backbone: nn.Module, config: ValueTrainConfig) -> list[str] | str:
    if config.lora_target_modules is not None:
        return list(config.lora_target_modules)
    try:
        from peft.utils.constants import (
            TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as M,
        )  # heavy: peft
    except ImportError:  # pragma: no cover - older peft
        M = {}
    targets = M.get(getattr(backbone.config, "model_type", ""))
    return list(targets) if targets else "all-linear"


def add_lora(model: ValueModel, config: ValueTrainConfig) -> None:
    """Wrap the backbone in seeded LoRA adapters."""
    from peft import LoraConfig, get_peft_model  # heavy: peft, only for LoRA

    lcfg = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=_lora_targets(model.backbone, config),
        bias="none",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        try:
            model.backbone = get_peft_model(model.backbone, lcfg)
        except ValueError as e:
            raise ConfigError(f"lora_target_modules: {e}") from None


def apply_tuning(model: ValueModel, config: ValueTrainConfig) -> None:
    """Set requires_grad so that exactly the weights of config.tuning train."""
    if model.is_lora and config.tuning != "lora":
        raise ConfigError(
            f"tuning={config.tuning!r} cannot continue a LoRA value model; use tuning='lora'"
        )
    if config.tuning == "lora" and not model.is_lora:
        add_lora(model, config)
    model.requires_grad_(False)
    model.head.requires_grad_(True)
    if config.tuning == "full":
        model.backbone.requires_grad_(True)
    elif config.tuning == "lora":
        for name, p in model.backbone.named_parameters():
            if "lora_" in name:
                p.requires_grad_(True)
    elif config.tuning == "top":
        unfreeze_top(model.backbone, config.top_layers)


def unfreeze_top(module: nn.Module, n: int) -> None:
    """Let the last `n` transformer blocks of `module` train, and the parameters registered
    after the layer stack (final norm, ...) with them; an output head (`lm_head`) stays as is."""
    if n <= 0:
        return
    stack_name, stack = layer_stack(module)
    for block in list(stack)[-n:]:
        block.requires_grad_(True)
    seen_stack = False
    for name, p in module.named_parameters():
        if name.startswith(stack_name + "."):
            seen_stack = True
        elif seen_stack and "lm_head" not in name:
            p.requires_grad_(True)


def trainable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}
