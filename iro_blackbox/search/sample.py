"""`sample`: n independent whole responses per prompt from the policy (the base policy when the
provider is the plain model). One Extend with n per prompt; sample i uses sample index i, so
`sample` and `best_of_n` with the same params draw the SAME responses (and replay from the request
cache). The answer is the first sample: one draw of the policy."""

from __future__ import annotations

from time import perf_counter

from ..dataset import Example
from ..graders.base import Grader
from ..providers.base import Extend, Provider
from .common import OnResult, SearchContext, chunk_tokens, run_all
from .scorer import Scorer
from .types import Candidate, SearchParams, SearchResult, SearchUsage


def sample_requests(examples: list[Example], params: SearchParams) -> list[Extend]:
    """The provider requests `sample` and `best_of_n` make for `examples`: one Extend of
    n = params.n whole responses per prompt, sample indices from 0 (what to prefetch, e.g. through
    a Batch API, before running them)."""
    return [
        Extend(
            prompt=e.prompt,
            prefix="",
            n=params.num_samples,
            max_tokens=params.max_tokens,
            params=params.sampling,
            sample_index=0,
        )
        for e in examples
    ]


async def draw(ctx: SearchContext, example: Example, usage: SearchUsage) -> list[Candidate]:
    """n whole responses of at most max_tokens tokens for one prompt."""
    (req,) = sample_requests([example], ctx.params)
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
    provider: Provider,
    scorer: Scorer | None,
    params: SearchParams,
    grader: Grader | None = None,
    on_result: OnResult | None = None,
) -> list[SearchResult]:
    """n samples per prompt; best = the first. With a grader, candidates are graded (all of them,
    or only the first when params.grade_all is False); the scorer is not used."""
    ctx = SearchContext(provider, scorer, params, grader)

    async def one(example: Example) -> SearchResult:
        started, usage = perf_counter(), SearchUsage()
        cands = await draw(ctx, example, usage)
        return await ctx.finish(example, "sample", cands, [0], "first", usage, started)

    return await run_all(examples, one, params.concurrency, on_result, ctx.lockstep)
