"""`sample`: n independent whole responses per prompt from the policy (the base policy when the
provider is the plain model). One Extend with n per prompt; sample i uses sample index i, so
`sample` and `best_of_n` with the same params draw the SAME responses (and replay from the request
cache). The answer is the first sample: one draw of the policy."""

from __future__ import annotations

from time import perf_counter
from typing import Any

from ..adapters.base import Extend
from ..dataset import Example
from .common import OnResult, SearchContext, chunk_tokens, run_all
from .types import Candidate, SearchParams, SearchResult, SearchUsage


async def draw(ctx: SearchContext, example: Example, usage: SearchUsage) -> list[Candidate]:
    """n whole responses of at most max_tokens tokens for one prompt."""
    p = ctx.params
    req = Extend(
        prompt=example.prompt,
        prefix="",
        n=p.num_samples,
        max_tokens=p.max_tokens,
        params=p.sampling,
        sample_index=0,
    )
    (chunks,) = await ctx.extend([req], usage)
    usage.steps += 1
    return [
        Candidate(
            text=c.text,
            finish_reason=c.finish_reason,
            completion_tokens=chunk_tokens(c, req.max_tokens),
        )
        for c in chunks
    ]


async def sample(
    examples: list[Example],
    provider: Any,
    scorer: Any,
    params: SearchParams,
    grader: Any = None,
    on_result: OnResult | None = None,
) -> list[SearchResult]:
    """n samples per prompt; best = the first. With a grader, candidates are graded (all of them,
    or only the first when params.grade_all is False); the scorer is not used."""
    ctx = SearchContext(provider, scorer, params, grader)

    async def one(example: Example) -> SearchResult:
        started, usage = perf_counter(), SearchUsage()
        cands = await draw(ctx, example, usage)
        return await ctx.finish(example, "sample", cands, [0], "first", usage, started)

    return await run_all(examples, one, params.concurrency, on_result)
