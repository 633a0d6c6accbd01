"""Building the provider a run (or a served policy) uses, from its ProviderOptions.

A registered provider builds itself: `factory.from_options(options, store=store)` when it has that
classmethod, else `factory(model=options.model)` (the minimal contract of a third-party provider).
"""

from __future__ import annotations

from typing import Any

from ..registry import PROVIDERS
from .base import Provider
from .options import ProviderOptions


def build_provider(options: ProviderOptions, store: Any = None) -> Provider:
    """The provider `options.provider` names, configured by `options` (store: the request cache)."""
    factory = PROVIDERS.get(options.provider)
    from_options = getattr(factory, "from_options", None)
    if callable(from_options):
        return from_options(options, store=store)
    return factory(model=options.model)
