"""Decoding-time search: sample, best_of_n and chunk-level beam search (cbs), chosen by name.

from iro_blackbox.search import SearchParams, CombinedScorer, get_search
params = SearchParams(w=4, k=4, l=16, max_tokens=128)
results = await get_search("cbs")(examples, provider, CombinedScorer([v1, v2]), params,
                                  grader=grader, on_result=save)
results[i].best.text, results[i].candidates, results[i].usage.completion_tokens
"""

from .batching import Coalescer
from .best_of_n import best_of_n
from .cbs import cbs
from .common import answer_pool, pick_best, resolve_pick, run_all, value_pick
from .registry import SEARCHES, SearchFn, get_search, run_search, search_names
from .sample import sample
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
    "SEARCHES",
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
    "as_scorer",
    "best_of_n",
    "cbs",
    "get_search",
    "pick_best",
    "answer_pool",
    "value_pick",
    "resolve_pick",
    "run_all",
    "run_search",
    "sample",
    "search_names",
    "select",
    "select_diverse",
    "select_softmax",
    "select_topw",
    "summarize",
]
