"""Fixtures for the search tests: a provider that records every Extend and returns seeded (or
scripted) chunks, plus deterministic scorers, value models and graders of the tests' own.

The fake provider is only for pure search logic (selection, bookkeeping, batching); the real
SmolLM2 runs the same searches in test_search_real.py.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest

from iro_blackbox.dataset import Example, prompt_text
from iro_blackbox.graders.base import Grade
from iro_blackbox.providers.base import Chunk, Extend, ProviderStats, Usage
from iro_blackbox.utils import derive_seed, stable_hash

__all__ = ["search_examples", "search_fake_provider"]  # what conftest star-imports

WORDS = ["good", "bad", "fine", "sun", "rain", "tea", "queue", "happy", "grey", "walk"]


class FakeProvider:
    """Records every extend() call; each chunk is a seeded function of (prompt, prefix, sample
    index + j, params.seed), one word per token, ending with "stop" with probability stop_prob
    after each word. `script(req, j)` overrides it: return a Chunk, or (text, finish_reason) with
    one token per word, or None for the seeded default."""

    name = "fake"
    model_name = "fake-lm"

    def __init__(
        self,
        stop_prob: float = 0.2,
        seed: int = 0,
        script: Callable[[Extend, int], Any] | None = None,
        delay: float = 0.0,
        report_tokens: bool = True,
        wrong_n: bool = False,
    ):
        self.stop_prob = stop_prob
        self.seed = seed
        self.script = script
        self.delay = delay
        self.report_tokens = report_tokens
        self.wrong_n = wrong_n
        self.calls: list[list[Extend]] = []
        self.stats = ProviderStats()
        self.in_flight = 0
        self.max_in_flight = 0

    @staticmethod
    def handle_for(prompt: Any, text: str) -> tuple[str, str, str]:
        return ("fake-kv", prompt_text(prompt), text)

    def _chunk(self, req: Extend, j: int) -> Chunk:
        ptext = prompt_text(req.prompt)
        if self.script is not None:
            res = self.script(req, j)
            if isinstance(res, Chunk):
                return res
            if res is not None:
                text, finish = res
                n = len(text.split())
                return Chunk(
                    text,
                    finish,
                    tokens=list(range(n)) if self.report_tokens else None,
                    usage=Usage(len(ptext.split()), n if self.report_tokens else 0),
                    handle=self.handle_for(req.prompt, req.prefix + text),
                )
        rng = random.Random(
            derive_seed(self.seed, ptext, req.prefix, req.sample_index + j, req.params.seed)
        )
        words: list[str] = []
        finish = "length"
        for _ in range(req.max_tokens):
            words.append(rng.choice(WORDS))
            if rng.random() < self.stop_prob:
                finish = "stop"
                break
        text = "".join(" " + w for w in words)
        return Chunk(
            text,
            finish,
            tokens=[WORDS.index(w) for w in words] if self.report_tokens else None,
            usage=Usage(
                len(ptext.split()) + len(req.prefix.split()),
                len(words) if self.report_tokens else 0,
            ),
            handle=self.handle_for(req.prompt, req.prefix + text),
        )

    async def extend(self, requests: list[Extend]) -> list[list[Chunk]]:
        self.calls.append(list(requests))
        self.stats.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            out = [[self._chunk(r, j) for j in range(r.n)] for r in requests]
            if self.wrong_n:
                out = [chunks[:-1] for chunks in out]
            return out
        finally:
            self.in_flight -= 1

    # helpers for assertions
    @property
    def requests(self) -> list[Extend]:
        return [r for call in self.calls for r in call]

    def prompts_per_call(self) -> list[set[str]]:
        return [{prompt_text(r.prompt) for r in call} for call in self.calls]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model_name}

    async def aclose(self) -> None:
        return None


class FnScorer:
    """An async scorer S = fn(prompt, partial); records every call."""

    def __init__(self, fn: Callable[[str, str], float]):
        self.fn = fn
        self.calls: list[list[tuple[str, str]]] = []

    async def score(self, prompts: list[str], partials: list[str]) -> list[float]:
        self.calls.append(list(zip(prompts, partials, strict=True)))
        return [float(self.fn(p, x)) for p, x in zip(prompts, partials, strict=True)]


class WordValue:
    """A synchronous value model (the ValueModel.score shape): weight * count of `word`."""

    def __init__(self, word: str, weight: float = 1.0):
        self.word = word
        self.weight = weight
        self.name = f"count({word})"
        self.threads: set[str] = set()

    def score(self, prompts: list[str], partials: list[str]) -> list[float]:
        self.threads.add(threading.current_thread().name)
        return [self.weight * x.split().count(self.word) for x in partials]


class FnGrader:
    """A grader of the tests' own: reward = fn(sample, item); records every call."""

    name = "fn"

    def __init__(self, fn: Callable[[str, dict[str, Any]], float]):
        self.fn = fn
        self.spec = {"type": "test"}
        self.calls: list[list[str]] = []

    @property
    def spec_hash(self) -> str:
        return stable_hash(self.spec)

    async def grade(self, samples: list[str], items: list[dict[str, Any]]) -> list[Grade]:
        self.calls.append(list(samples))
        return [Grade(float(self.fn(s, it))) for s, it in zip(samples, items, strict=True)]


def count_word(word: str) -> Callable[..., float]:
    return lambda _p, x: x.split().count(word)


def make_examples(n: int, chat: bool = False) -> list[Example]:
    topics = ["a rainy monday", "the post office queue", "a cold tea", "a long commute"]
    out = []
    for i in range(n):
        text = f"Say something about {topics[i % len(topics)]} #{i}"
        prompt: Any = [{"role": "user", "content": text}] if chat else text
        out.append(Example(id=f"ex{i}", prompt=prompt, data={"prompt": text, "n": i}))
    return out


@pytest.fixture
def search_fake_provider() -> FakeProvider:
    """A fresh recording fake provider (seeded chunks, stop probability 0.2)."""
    return FakeProvider()


@pytest.fixture
def search_examples() -> list[Example]:
    """Three text prompts."""
    return make_examples(3)
