"""Building the provider a run (or a served policy) uses, from its config."""

from __future__ import annotations

from typing import Any

from .base import Provider, get_provider


def build_provider(cfg: Any, store: Any = None) -> Provider:
    """The provider described by an AlignConfig-like object (provider, model, base_url, ...)."""
    if cfg.provider == "hf":
        return get_provider("hf", model=cfg.model, device=cfg.device)
    if cfg.provider == "openai":
        return get_provider(
            "openai",
            model=cfg.model,
            base_url=cfg.base_url,
            store=store,
            cache=not cfg.no_cache,
            mode=cfg.api_mode,
            tokenizer=cfg.tokenizer,
            concurrency=cfg.concurrency,
        )
    return get_provider(cfg.provider, model=cfg.model)
