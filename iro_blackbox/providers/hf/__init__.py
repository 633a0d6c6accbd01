"""The local provider `hf`: a transformers causal LM with batched, chunked generation and KV reuse."""

from .provider import HFProvider

__all__ = ["HFProvider"]
