"""`best_of_n`: n samples per prompt (the same draws as `sample`), the answer is the best one by
the grader (ties: the first), or by the value-model score S when there is no grader
(final='auto') or when final='score'. N = W*K by default: the equal-compute baseline for CBS."""

from __future__ import annotations

from time import perf_counter

from ..dataset import Example, prompt_text
from ..graders.base import Grader
from ..providers.base import Provider
from .common import OnResult, SearchContext, resolve_pick, run_all
from .sample import draw
from .scorer import Scorer
from .types import SearchParams, SearchResult, SearchUsage


async def best_of_n(
    examples: list[Example],
    provider: Provider,
    scorer: Scorer | None,
    params: SearchParams,
    grader: Grader | None = None,
    on_result: OnResult | None = None,
) -> list[SearchResult]:
    ctx = SearchContext(provider, scorer, params, grader)
    pick_by = resolve_pick(params.final, grader)

    async def one(example: Example) -> SearchResult:
        started, usage = perf_counter(), SearchUsage()
        cands = await draw(ctx, example, usage)
        if pick_by == "score":
            scores = await ctx.score(prompt_text(example.prompt), [c.text for c in cands], usage)
            for c, s in zip(cands, scores, strict=True):
                c.score = s
        pool = list(range(len(cands)))
        return await ctx.finish(example, "best_of_n", cands, pool, pick_by, usage, started)

    return await run_all(examples, one, params.concurrency, on_result, ctx.lockstep)
