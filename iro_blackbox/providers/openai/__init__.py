"""The `openai` provider: any OpenAI-compatible HTTP endpoint (OpenAI, vLLM, llama.cpp, DeepSeek,
Mistral, Qwen, OpenRouter, ...): the provider, its HTTP client, the capability probe, prices,
rate limits, retries and the Batch API."""

from .provider import OpenAIProvider, probe_endpoint

__all__ = ["OpenAIProvider", "probe_endpoint"]
