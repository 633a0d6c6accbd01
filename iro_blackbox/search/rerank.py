"""`rerank`: the whole-answer policy, for endpoints that cannot continue a partial answer.

pi_t draws N = W*K whole answers from the base policy and answers with the best by the value
models, S = sum_t V_t(x, answer)/beta_t, with no grader at decode time (final='grader' picks by
the grader instead, which makes it Best-of-N). Candidates come back best S first; the top W are
marked final (the W "beams" of a chunk-level search), the draws the IRO loop keeps as pi_t's
rollouts. This is value-reranked sampling, not chunk-level search: the value models choose
among complete answers but cannot steer one as it is written.
"""

from __future__ import annotations

from time import perf_counter

from ..dataset import Example, prompt_text
from ..graders.base import Grader
from ..providers.base import Provider
from .common import OnResult, SearchContext, answer_pool, resolve_pick, run_all
from .sample import draw
from .scorer import Scorer
from .types import SearchParams, SearchResult, SearchUsage


async def rerank(
    examples: list[Example],
    provider: Provider,
    scorer: Scorer | None,
    params: SearchParams,
    grader: Grader | None = None,
    on_result: OnResult | None = None,
) -> list[SearchResult]:
    ctx = SearchContext(provider, scorer, params, grader)
    pick_by = "grader" if params.final == "grader" else resolve_pick("score", grader)

    async def one(example: Example) -> SearchResult:
        started, usage = perf_counter(), SearchUsage()
        cands = await draw(ctx, example, usage)
        scores = await ctx.score(prompt_text(example.prompt), [c.text for c in cands], usage)
        for c, s in zip(cands, scores, strict=True):
            c.score = s
        order = sorted(range(len(cands)), key=lambda i: -scores[i])  # stable: ties keep order
        cands = [cands[i] for i in order]
        for rank, c in enumerate(cands):
            c.final = rank < params.w
        pool = answer_pool([c.text for c in cands])
        return await ctx.finish(example, "rerank", cands, pool, pick_by, usage, started)

    return await run_all(examples, one, params.concurrency, on_result, ctx.lockstep)
