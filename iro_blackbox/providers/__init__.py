"""Providers: local transformers models (hf/) and OpenAI-compatible APIs (openai/) behind one async
seam, `extend(requests) -> chunks` (base.py). They are registered by name in iro_blackbox.registry
and built from a run's ProviderOptions (build.py)."""

from .base import Chunk, Extend, Message, Prompt, Provider, ProviderStats, Usage
from .build import build_provider
from .options import API_MODES, ProviderOptions

__all__ = [
    "API_MODES",
    "Chunk",
    "Extend",
    "Message",
    "Prompt",
    "Provider",
    "ProviderOptions",
    "ProviderStats",
    "Usage",
    "build_provider",
]
