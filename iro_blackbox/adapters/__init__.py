"""Providers: local transformers models and OpenAI-compatible APIs behind one async seam."""

from .base import (
    Chunk,
    Extend,
    Provider,
    ProviderStats,
    Usage,
    get_provider,
    provider_names,
    register_provider,
)

__all__ = [
    "Chunk",
    "Extend",
    "Provider",
    "ProviderStats",
    "Usage",
    "get_provider",
    "provider_names",
    "register_provider",
]
