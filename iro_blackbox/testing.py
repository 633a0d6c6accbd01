"""A deterministic fake provider for tests: iro-bb's own, and a plugin author's.

    from iro_blackbox.testing import FakeProvider

    provider = FakeProvider()                        # seeded words, stops with probability 0.2
    chunks = await provider.extend([Extend("Say hi", n=2, max_tokens=4)])
    provider.requests                                # every Extend it was sent, in order

It follows the Provider protocol of iro_blackbox.providers.base exactly (name, model_name, stats,
async extend, async score, describe, async aclose) and needs neither a model nor a network, so a
grader, a search or an executor of your own can be exercised end to end. Every chunk is a pure
function of (seed, prompt, prefix, sample index, params.seed): the same request gives the same
text, in any process. One word is one token. Register it to run a whole `align` on it:

    from iro_blackbox.registry import PROVIDERS
    PROVIDERS.register("fake", FakeProvider)         # iro_blackbox.align(..., provider="fake")

`script(request, j)` replaces the seeded text of the j-th continuation of a request: return a
Chunk, a (text, finish_reason) pair (one token per word), or None for the seeded default; raise a
ProviderError to play a failing endpoint.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from .dataset import prompt_text
from .providers.base import Chunk, Extend, Prompt, ProviderStats, Usage
from .utils import derive_seed

WORDS = ("good", "bad", "fine", "sun", "rain", "tea", "queue", "happy", "grey", "walk")

Script = Callable[[Extend, int], Chunk | tuple[str, str] | None]


class FakeProvider:
    """A recording, seeded provider: each word is drawn from `words` and, after each, the chunk
    stops ("stop") with probability `stop_prob`; "length" when it reaches max_tokens.

    delay: seconds each extend() call sleeps (to overlap calls); report_tokens: False leaves
    token ids and completion-token counts out (as some APIs do); wrong_n: return one chunk too
    few per request (a broken server). Token ids are the words' indices in `words`.
    """

    name = "fake"

    def __init__(
        self,
        model: str = "fake-lm",
        *,
        stop_prob: float = 0.2,
        seed: int = 0,
        script: Script | None = None,
        delay: float = 0.0,
        report_tokens: bool = True,
        wrong_n: bool = False,
        words: tuple[str, ...] = WORDS,
    ):
        self.model_name = model
        self.stop_prob = stop_prob
        self.seed = seed
        self.script = script
        self.delay = delay
        self.report_tokens = report_tokens
        self.wrong_n = wrong_n
        self.words = tuple(words)
        self.calls: list[list[Extend]] = []  # one entry per extend() call
        self.stats = ProviderStats()
        self.in_flight = 0
        self.max_in_flight = 0
        self.closed = False

    @classmethod
    def from_options(cls, options: Any, store: Any = None) -> FakeProvider:
        """Built from a run's ProviderOptions (only the model name is used)."""
        return cls(options.model)

    @staticmethod
    def handle_for(prompt: Prompt, text: str) -> tuple[str, str, str]:
        """The continuation handle of `prompt` answered with `text` so far."""
        return ("fake-kv", prompt_text(prompt), text)

    # -- the protocol ------------------------------------------------------------------------
    async def extend(self, requests: list[Extend]) -> list[list[Chunk]]:
        self.calls.append(list(requests))
        self.stats.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            out = [[self.chunk(r, j) for j in range(r.n)] for r in requests]
            if self.wrong_n:
                out = [chunks[:-1] for chunks in out]
            for chunks in out:
                for c in chunks:
                    self.stats.prompt_tokens += c.usage.prompt_tokens
                    self.stats.completion_tokens += c.usage.completion_tokens
            return out
        finally:
            self.in_flight -= 1

    async def score(self, prompt: Prompt, text: str) -> list[float]:
        """A log-probability per word of `text`: log(1 / len(words)) for a known word, a lower
        fixed value for an unknown one (deterministic, no model)."""
        import math

        known, unknown = -math.log(len(self.words)), -2 * math.log(len(self.words))
        return [known if w in self.words else unknown for w in text.split()]

    def describe(self) -> dict[str, Any]:
        return {"provider": self.name, "model": self.model_name, "seed": self.seed}

    async def aclose(self) -> None:
        self.closed = True

    # -- what a chunk is -----------------------------------------------------------------------
    def chunk(self, req: Extend, j: int) -> Chunk:
        """The j-th continuation of `req` (the script's, else the seeded one)."""
        if self.script is not None:
            res = self.script(req, j)
            if isinstance(res, Chunk):
                return res
            if res is not None:
                text, finish = res
                return self._make(req, text, finish, None)  # type: ignore[arg-type]
        rng = random.Random(
            derive_seed(self.seed, prompt_text(req.prompt), req.prefix, req.sample_index + j,
                        req.params.seed)
        )  # fmt: skip
        words: list[str] = []
        finish = "length"
        for _ in range(req.max_tokens):
            words.append(rng.choice(self.words))
            if rng.random() < self.stop_prob:
                finish = "stop"
                break
        return self._make(req, "".join(" " + w for w in words), finish, words)

    def _make(self, req: Extend, text: str, finish: str, words: list[str] | None) -> Chunk:
        n = len(text.split())
        if words is not None:
            tokens = [self.words.index(w) for w in words]
        else:
            tokens = list(range(n))
        prompt_tokens = len(prompt_text(req.prompt).split()) + len(req.prefix.split())
        return Chunk(
            text,
            finish,  # type: ignore[arg-type]
            tokens=tokens if self.report_tokens else None,
            usage=Usage(prompt_tokens, n if self.report_tokens else 0),
            handle=self.handle_for(req.prompt, req.prefix + text),
        )

    # -- for assertions ------------------------------------------------------------------------
    @property
    def requests(self) -> list[Extend]:
        """Every Extend received, in order."""
        return [r for call in self.calls for r in call]

    def prompts_per_call(self) -> list[set[str]]:
        """The distinct prompts of each extend() call."""
        return [{prompt_text(r.prompt) for r in call} for call in self.calls]


__all__ = ["WORDS", "FakeProvider"]
