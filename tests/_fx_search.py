"""Fixtures for the search tests: the package's own fake provider (iro_blackbox.testing, the one
plugin authors use: it records every Extend and returns seeded or scripted chunks), plus
deterministic scorers, value models and graders of the tests' own.

The fake provider is only for pure search logic (selection, bookkeeping, batching); the real
SmolLM2 runs the same searches in test_search_real.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from iro_blackbox.dataset import Example
from iro_blackbox.graders.base import Grade
from iro_blackbox.testing import WORDS, FakeProvider  # noqa: F401 - the tests import them here
from iro_blackbox.utils import stable_hash

__all__ = ["search_examples", "search_fake_provider"]  # what conftest star-imports


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
