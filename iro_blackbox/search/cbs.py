"""`cbs`: chunk-level beam search guided by value models (the IRO decoder).

Per prompt, W beams start from the empty response. Each step:
  1. every unfinished beam is extended by K sampled chunks of at most L tokens (one provider call
     for the unfinished beams of all prompts in flight; each beam passes back the handle of its
     last chunk so a local provider continues from its KV cache);
  2. the new prefixes (K per unfinished beam) are scored, S = sum_t V_t(x, prefix)/beta_t;
  3. as many as there were unfinished beams are kept by the selection rule (topw | diverse |
     softmax | lineage, see selection.py).
A beam is finished when its chunk ended with "stop" (EOS or a stop string) or it reached
max_tokens ("length"). Finished beams keep their slot as they are: they are not extended and do
not compete again (the diversity rules treat their texts as taken). The search ends when all W
beams are finished; an unfinished beam grows by at least one token per step, so that takes at
most max_tokens steps (usually ceil(max_tokens / L)).

The answer: among every complete answer the search produced (the W final beams and the finished
candidates selection dropped on the way, about W*K in all, as many as Best-of-N's N; non-empty
ones first), the best by the grader when final is 'grader' (or 'auto' with a grader; ties: higher
S, then first), else the best by S. An answer cut at max_tokens counts like one the model ended,
as it does for Best-of-N.

Sample indices: the K successors of the beam in slot b at step s use sample indices
s*W*K + b*K + j (j < K): distinct for every candidate of a prompt and the same on a rerun, so an
API provider's request cache replays a rerun exactly. With k_first (K at the first step only) the
first step takes indices 0 .. W*k_first - 1 and later steps follow on from there.

k_first: the first step samples k_first successors per beam instead of K. All W beams start from
the empty response, so that is W*k_first first chunks, of which W are kept. With K = 1 afterwards
the search prunes early and then only finishes the kept beams (Speculative Rejection's pattern).

With an empty scorer (no value models) every S is 0: selection keeps beams in sampling order
(topw), the first unique ones (diverse) or uniformly random unique ones (softmax): random beam
survival, an equal-compute sampling baseline rather than guided search.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from ..dataset import Example, prompt_text
from ..errors import ProviderError
from ..graders.base import Grader
from ..providers.base import Extend, Provider
from ..utils import derive_seed
from .common import OnResult, SearchContext, answer_pool, chunk_tokens, resolve_pick, run_all
from .scorer import Scorer
from .selection import select
from .types import Candidate, SearchParams, SearchResult, SearchUsage

EMPTY_PENALTY = -1e9  # selection score of an empty finished candidate


def _sample_index(p: SearchParams, step: int, slot: int) -> int:
    """First sample index of the successors of beam `slot` at `step` (module doc)."""
    k0 = p.k if p.k_first is None else p.k_first
    if step == 0:
        return slot * k0
    return p.w * k0 + (step - 1) * p.w * p.k + slot * p.k


@dataclass
class _Beam:
    text: str = ""  # the response so far
    tokens: int = 0  # its length in tokens
    handle: Any = None  # the provider's handle for continuing `text`
    finish_reason: str | None = None  # None while it can still grow
    score: float | None = None
    chunks: tuple[str, ...] = ()  # the chunks `text` is made of, in order

    def candidate(self, final: bool) -> Candidate:
        return Candidate(
            text=self.text,
            finish_reason=self.finish_reason or "length",
            score=self.score,
            completion_tokens=self.tokens,
            final=final,
            chunks=[c for c in self.chunks if c],
        )


async def _search_one(ctx: SearchContext, example: Example, pick_by: str) -> SearchResult:
    p = ctx.params
    w = p.w
    started, usage = perf_counter(), SearchUsage()
    ptext = prompt_text(example.prompt)
    beams = [_Beam() for _ in range(w)]
    dropped: list[_Beam] = []  # finished candidates that selection did not keep
    step = 0
    while any(b.finish_reason is None for b in beams):
        if step > p.max_tokens:  # cannot happen with chunk_tokens' fallback; a guard anyway
            raise ProviderError(f"cbs made no progress after {step} steps")
        slots = [i for i, b in enumerate(beams) if b.finish_reason is None]
        done = [b for b in beams if b.finish_reason is not None]
        k = p.k_first if step == 0 and p.k_first is not None else p.k
        requests = [
            Extend(
                prompt=example.prompt,
                prefix=beams[i].text,
                n=k,
                max_tokens=min(p.l, p.max_tokens - beams[i].tokens),
                params=p.sampling,
                sample_index=_sample_index(p, step, i),
                handle=beams[i].handle,
            )
            for i in slots
        ]
        out = await ctx.extend(requests, usage)
        cands: list[_Beam] = []
        parents: list[int] = []  # the slot each candidate extends (lineage selection)
        for i, req, chunks in zip(slots, requests, out, strict=True):
            parent = beams[i]
            for c in chunks:
                tokens = parent.tokens + chunk_tokens(c, req.max_tokens)
                reason = "stop" if c.finish_reason == "stop" else None
                if reason is None and tokens >= p.max_tokens:
                    reason = "length"
                cands.append(
                    _Beam(
                        parent.text + c.text,
                        tokens,
                        c.handle,
                        reason,
                        chunks=(*parent.chunks, c.text),
                    )
                )
                parents.append(i)
        texts = [c.text for c in cands]
        scores = await ctx.score(ptext, texts, usage)
        for c, s in zip(cands, scores, strict=True):
            c.score = s
        # an empty finished response (immediate EOS) survives only when nothing else can
        sel_scores = [
            EMPTY_PENALTY if (c.finish_reason == "stop" and not c.text.strip()) else s
            for c, s in zip(cands, scores, strict=True)
        ]
        rng = random.Random(derive_seed(p.sampling.seed, "cbs-select", example.id, step))
        keep = select(
            p.selection,
            texts,
            sel_scores,
            len(slots),
            temperature=p.selection_temperature,
            rng=rng,
            taken={b.text for b in done},
            parents=parents if step > 0 else None,  # the first step: all beams are the root
        )
        kept = set(keep)
        dropped.extend(c for i, c in enumerate(cands) if i not in kept and c.finish_reason)
        beams = done + [cands[i] for i in keep]
        step += 1
    usage.steps = step

    # final beams best-S first (stable), then the dropped finished candidates
    final = sorted(beams, key=lambda b: -(b.score if b.score is not None else float("-inf")))
    cands_out = [b.candidate(final=True) for b in final] + [
        b.candidate(final=False) for b in dropped
    ]
    pool = answer_pool([c.text for c in cands_out])  # every complete candidate, non-empty first
    return await ctx.finish(example, "cbs", cands_out, pool, pick_by, usage, started)


async def cbs(
    examples: list[Example],
    provider: Provider,
    scorer: Scorer | None,
    params: SearchParams,
    grader: Grader | None = None,
    on_result: OnResult | None = None,
) -> list[SearchResult]:
    """Chunk-level beam search over every example (see the module docstring)."""
    ctx = SearchContext(provider, scorer, params, grader)
    pick_by = resolve_pick(params.final, grader)

    async def one(example: Example) -> SearchResult:
        return await _search_one(ctx, example, pick_by)

    return await run_all(examples, one, params.concurrency, on_result, ctx.lockstep)
