"""The `vllm` provider: vLLM's offline engine in its own process (provider.py, process.py,
engine.py)."""

from .provider import VLLMProvider

__all__ = ["VLLMProvider"]
