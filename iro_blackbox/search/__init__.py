"""Decoding-time search: sample, best_of_n, chunk-level beam search (cbs) and value-reranked
whole answers (rerank), registered by name in
iro_blackbox.registry.SEARCHES. Each is a plain async function with one signature:

    results = await cbs(examples, provider, scorer, params, grader=None, on_result=None)
    results[i].best.text, results[i].candidates, results[i].usage.completion_tokens

from iro_blackbox.registry import SEARCHES
from iro_blackbox.search import SearchParams, CombinedScorer
results = await SEARCHES.get("cbs")(examples, provider, CombinedScorer([v1, v2]), params)
"""

from .batching import Coalescer
from .best_of_n import best_of_n
from .cbs import cbs
from .common import SearchFn, answer_pool, pick_best, resolve_pick, run_all, value_pick
from .rerank import rerank
from .sample import sample, sample_requests
from .scorer import CombinedScorer, Scorer, ValueModelLike, as_scorer
from .selection import select, select_diverse, select_softmax, select_topw
from .types import (
    FINALS,
    SELECTIONS,
    Candidate,
    SearchParams,
    SearchResult,
    SearchUsage,
    summarize,
)

__all__ = [
    "FINALS",
    "SELECTIONS",
    "Candidate",
    "Coalescer",
    "CombinedScorer",
    "Scorer",
    "SearchFn",
    "SearchParams",
    "SearchResult",
    "SearchUsage",
    "ValueModelLike",
    "answer_pool",
    "as_scorer",
    "best_of_n",
    "cbs",
    "pick_best",
    "rerank",
    "resolve_pick",
    "run_all",
    "sample",
    "sample_requests",
    "select",
    "select_diverse",
    "select_softmax",
    "select_topw",
    "summarize",
    "value_pick",
]
