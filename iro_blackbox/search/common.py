"""What every search method shares: the coalesced provider / scorer / grader calls with per-prompt
accounting, the final pick, and running many prompts at once under a concurrency cap."""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter
from typing import Any, Protocol

from ..dataset import Example
from ..errors import ConfigError, ProviderError
from ..graders.base import Grade, Grader
from ..providers.base import Chunk, Extend, Provider
from .batching import Coalescer, Rendezvous, order_key
from .scorer import Scorer, as_scorer, is_empty
from .types import Candidate, SearchParams, SearchResult, SearchUsage

OnResult = Callable[[SearchResult], Any]  # may be sync or async


class SearchFn(Protocol):
    """The one signature of every search method (registered in iro_blackbox.registry.SEARCHES)."""

    def __call__(
        self,
        examples: list[Example],
        provider: Provider,
        scorer: Scorer | None,
        params: SearchParams,
        grader: Grader | None = None,
        on_result: OnResult | None = None,
    ) -> Awaitable[list[SearchResult]]: ...


def resolve_pick(final: str, grader: Grader | None) -> str:
    """'grader' or 'score': how the answer is chosen among the candidates."""
    if final == "grader":
        if grader is None:
            raise ConfigError("final='grader' needs a grader (or use final='auto' or 'score')")
        return "grader"
    if final == "score":
        return "score"
    return "grader" if grader is not None else "score"


def chunk_tokens(chunk: Chunk, requested: int) -> int:
    """New tokens in a chunk: the provider's count, else its token ids, else (finish 'length')
    the number asked for, so a provider that reports no counts still cannot loop forever."""
    n = chunk.usage.completion_tokens or len(chunk.tokens or ())
    if n == 0 and chunk.finish_reason == "length":
        n = requested
    return n


class SearchContext:
    """One search call: the provider, scorer and grader behind coalescing wrappers, so that rows
    of all prompts in flight travel together."""

    def __init__(
        self,
        provider: Provider,
        scorer: Scorer | None,
        params: SearchParams,
        grader: Grader | None = None,
    ):
        if not isinstance(params, SearchParams):
            raise ConfigError(f"params must be SearchParams, got {type(params).__name__}")
        if not callable(getattr(provider, "extend", None)):
            raise ConfigError("provider has no extend(requests) method")
        self.provider = provider
        self.scorer: Scorer = as_scorer(scorer)
        self.params = params
        self.grader = grader
        # run_all's prompts move in lockstep: what shares a call never depends on timing
        self.lockstep = Rendezvous()
        self._extend: Coalescer[Extend, list[Chunk]] = Coalescer(
            provider.extend, "provider", self.lockstep
        )
        self._score: Coalescer[tuple[str, str], float] = Coalescer(
            self._score_pairs, "scorer", self.lockstep
        )
        self._grade: Coalescer[tuple[str, dict[str, Any]], Grade] = Coalescer(
            self._grade_pairs, "grader", self.lockstep
        )

    # -- the three coalesced calls, with accounting into one prompt's usage ----------------------

    async def extend(self, requests: list[Extend], usage: SearchUsage) -> list[list[Chunk]]:
        t0 = perf_counter()
        out = await self._extend(requests)
        usage.generate_seconds += perf_counter() - t0
        usage.provider_calls += 1
        usage.requests += len(requests)
        for req, chunks in zip(requests, out, strict=True):
            if len(chunks) != req.n:
                raise ProviderError(
                    f"provider returned {len(chunks)} continuations for a request of n={req.n}"
                )
            for c in chunks:
                usage.chunks += 1
                usage.cached_chunks += int(bool(c.cached))
                usage.prompt_tokens += c.usage.prompt_tokens
                usage.completion_tokens += chunk_tokens(c, req.max_tokens)
        return out

    async def score(self, prompt: str, partials: list[str], usage: SearchUsage) -> list[float]:
        """S for each partial response of one prompt (identical texts are scored once)."""
        if is_empty(self.scorer):
            return [0.0] * len(partials)
        unique = list(dict.fromkeys(partials))
        t0 = perf_counter()
        values = await self._score([(prompt, p) for p in unique])
        usage.score_seconds += perf_counter() - t0
        usage.scored += len(unique)
        by_text = dict(zip(unique, values, strict=True))
        return [by_text[p] for p in partials]

    async def grade(
        self, texts: list[str], item: dict[str, Any], usage: SearchUsage
    ) -> list[Grade]:
        if self.grader is None:
            raise ConfigError("no grader given")
        t0 = perf_counter()
        grades = await self._grade([(t, item) for t in texts])
        usage.grade_seconds += perf_counter() - t0
        usage.graded += len(texts)
        return grades

    async def _score_pairs(self, pairs: list[tuple[str, str]]) -> list[float]:
        values = await self.scorer.score([p for p, _ in pairs], [x for _, x in pairs])
        return [float(v) for v in values]

    async def _grade_pairs(self, pairs: list[tuple[str, dict[str, Any]]]) -> list[Grade]:
        assert self.grader is not None
        return list(await self.grader.grade([s for s, _ in pairs], [i for _, i in pairs]))

    # -- grading and the final pick --------------------------------------------------------------

    async def grade_candidates(
        self, example: Example, cands: list[Candidate], idx: Sequence[int], usage: SearchUsage
    ) -> None:
        idx = [i for i in idx if cands[i].reward is None]
        if not idx or self.grader is None:
            return
        grades = await self.grade([cands[i].text for i in idx], example.data, usage)
        for i, g in zip(idx, grades, strict=True):
            cands[i].reward = float(g.score)
            cands[i].grade_error = g.error

    async def finish(
        self,
        example: Example,
        method: str,
        cands: list[Candidate],
        pool: list[int],
        pick_by: str,
        usage: SearchUsage,
        started: float,
    ) -> SearchResult:
        """Grade what needs grading, pick the answer among `pool`, build the result."""
        everything = list(range(len(cands)))
        if pick_by == "grader":
            await self.grade_candidates(
                example, cands, everything if self.params.grade_all else pool, usage
            )
        best = pick_best(cands, pool, pick_by)
        if pick_by != "grader" and self.grader is not None:
            await self.grade_candidates(
                example, cands, everything if self.params.grade_all else [best], usage
            )
        for i, c in enumerate(cands):
            c.index = i
        cands[best].selected = True
        return SearchResult(
            example=example,
            method=method,
            best=cands[best],
            candidates=cands,
            usage=usage,
            seconds=perf_counter() - started,
            picked_by=pick_by,
        )


def _key(x: float | None) -> float:
    return -math.inf if x is None else x


def answer_pool(texts: Sequence[str]) -> list[int]:
    """Indices an answer may come from: the non-empty texts (all of them if every one is empty):
    an immediate EOS is a legal candidate but never a useful answer when a real one exists."""
    every = list(range(len(texts)))
    return [i for i in every if texts[i].strip()] or every


def value_pick(texts: Sequence[str], scores: Sequence[float | None]) -> int:
    """Index of the answer by value score alone (no grader): the highest S in the answer pool,
    ties to the first. What cbs answers with final='score', for callers holding only texts and
    scores (e.g. stored rows)."""
    return max(answer_pool(texts), key=lambda i: _key(scores[i]))


def pick_best(cands: list[Candidate], pool: list[int], by: str) -> int:
    """Index of the answer within `pool`: highest reward (ties: higher S, then the first), highest
    S (ties: the first), or simply the first."""
    if not pool:
        raise ValueError("no candidates to pick from")
    if by == "first":
        return pool[0]
    if by == "grader":
        return max(pool, key=lambda i: (_key(cands[i].reward), _key(cands[i].score)))
    return max(pool, key=lambda i: _key(cands[i].score))


async def run_all(
    examples: list[Example],
    run_one: Callable[[Example], Awaitable[SearchResult]],
    concurrency: int,
    on_result: OnResult | None = None,
    lockstep: Rendezvous | None = None,
) -> list[SearchResult]:
    """Search every example with at most `concurrency` in flight; results in input order.

    `on_result(result)` (sync or async) runs as each prompt finishes. If it raises (e.g.
    Cancelled), the prompts in flight are cancelled and the error propagates. With `lockstep`
    (the search context's), the prompts' coalesced calls go out when all of them wait, their rows
    in example order (batching.py): batches, and so a seeded search, do not depend on timing.
    """
    examples = list(examples)
    results: list[SearchResult | None] = [None] * len(examples)
    todo = iter(enumerate(examples))

    async def worker() -> None:
        try:
            for i, ex in todo:  # a shared iterator: each example is taken by one worker
                order_key.set(i)  # this task's place in the rows of a coalesced call
                res = await run_one(ex)
                results[i] = res
                if on_result is not None:
                    ret = on_result(res)
                    if inspect.isawaitable(ret):
                        await ret
        finally:
            if lockstep is not None:
                lockstep.leave()

    n = min(concurrency, len(examples))
    if lockstep is not None:
        lockstep.join(n)
    tasks = [asyncio.ensure_future(worker()) for _ in range(n)]
    try:
        if tasks:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                if not t.cancelled() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
            await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]
