"""The provider seam: one async call extends many response prefixes at once.

    chunks = await provider.extend([Extend(prompt, prefix, n, max_tokens, params, sample_index)])
    chunks[i][j] is the j-th of n continuations of request i.

A prompt is either rendered text or a list of chat messages ({"role", "content"}). The provider
applies the chat template itself. `prefix` is the response so far (plain text, no template).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from ..params import SamplingParams

Message = dict[str, str]
Prompt = str | list[Message]
FinishReason = Literal["stop", "length"]


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __iadd__(self, other: Usage) -> Usage:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        return self


@dataclass
class Extend:
    """Continue `prefix` (the response so far) of `prompt` by at most `max_tokens` tokens, n times.

    sample_index: index of the first of the n samples; sample i uses seed (params.seed,
    sample_index + i), so the same request with the same index gives the same answer and the cache
    key can include it.
    handle: an opaque token from a previous Chunk.handle for the same prompt + prefix; a local
    provider uses it to continue from that prefix's KV cache instead of re-encoding it.
    response_format: structured output for a judge; sent by the openai provider on chat endpoints.
    """

    prompt: Prompt
    prefix: str = ""
    n: int = 1
    max_tokens: int = 16
    params: SamplingParams = field(default_factory=SamplingParams)
    sample_index: int = 0
    handle: Any = None
    # a JSON-schema response format (OpenAI's chat `response_format`) for whole answers, used by
    # LLM judges; a provider that cannot constrain its output ignores it (the caller checks)
    response_format: dict[str, Any] | None = None


@dataclass
class Chunk:
    """One continuation: the new text only (not the prefix)."""

    text: str
    finish_reason: FinishReason
    tokens: list[int] | None = None  # token ids in the policy's vocabulary, where known
    logprobs: list[float] | None = None  # one per new token, where the provider exposes them
    usage: Usage = field(default_factory=Usage)
    cached: bool = False  # True when replayed from the request cache
    handle: Any = None  # pass back in Extend.handle to continue prefix + text cheaply


@dataclass(frozen=True, eq=False)
class TokenHandle:
    """A continuation handle holding the exact token ids of prompt + answer so far, for engines
    that take token-ID prompts (vLLM, the openai provider's token-ids mode): continuing from it
    is token-exact, never a re-tokenization of the text."""

    prompt_key: str
    response_text: str
    token_ids: tuple[int, ...]
    n_prompt: int = 0  # how many of token_ids are the prompt's


@dataclass
class ProviderStats:
    """Counters a run reports (requests, cache hits, tokens, cost)."""

    requests: int = 0  # HTTP requests (API) or forward batches (local)
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    retries: int = 0

    def snapshot(self) -> dict[str, Any]:
        return dict(self.__dict__)


@runtime_checkable
class Provider(Protocol):
    """What every provider implements."""

    name: str  # registry name, e.g. "hf" or "openai"
    model_name: str  # recorded with runs and cache keys
    stats: ProviderStats

    async def extend(self, requests: list[Extend]) -> list[list[Chunk]]: ...

    async def score(self, prompt: Prompt, text: str) -> list[float]:
        """Token logprobs of `text` as the response to `prompt` (raise PermanentError if unsupported)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What this provider is and can do (recorded with the run; never includes secrets)."""
        ...

    async def aclose(self) -> None: ...
