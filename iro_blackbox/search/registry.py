"""Search methods by name. Every method is a plain async function with one signature:

results = await method(examples, provider, scorer, params, grader=None, on_result=None)
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

from ..dataset import Example
from ..errors import ConfigError
from .best_of_n import best_of_n
from .cbs import cbs
from .common import OnResult
from .sample import sample
from .types import SearchParams, SearchResult


class SearchFn(Protocol):
    def __call__(
        self,
        examples: list[Example],
        provider: Any,
        scorer: Any,
        params: SearchParams,
        grader: Any = None,
        on_result: OnResult | None = None,
    ) -> Awaitable[list[SearchResult]]: ...


SEARCHES: dict[str, SearchFn] = {
    "sample": sample,
    "best_of_n": best_of_n,
    "cbs": cbs,
}


def search_names() -> list[str]:
    return list(SEARCHES)


def get_search(name: str) -> SearchFn:
    """The search function called `name` (ConfigError naming the choices otherwise)."""
    try:
        return SEARCHES[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown search method {name!r}: choose one of {', '.join(SEARCHES)}"
        ) from None


async def run_search(
    method: str,
    examples: list[Example],
    provider: Any,
    scorer: Any,
    params: SearchParams,
    grader: Any = None,
    on_result: OnResult | None = None,
) -> list[SearchResult]:
    """Run the search method called `method` (same arguments as the methods themselves)."""
    return await get_search(method)(examples, provider, scorer, params, grader, on_result)
