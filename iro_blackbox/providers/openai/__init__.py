"""The `openai` provider: any OpenAI-compatible HTTP endpoint (OpenAI, vLLM, llama.cpp, DeepSeek,
Mistral, Qwen, OpenRouter, ...), through the official `openai` SDK: the provider and its parts
(negotiation, wire format, cached sampler, token counting, transport), the capability probe,
prices, rate limits, retries and the Batch API."""

from .provider import OpenAIProvider, probe_endpoint

__all__ = ["OpenAIProvider", "probe_endpoint"]
