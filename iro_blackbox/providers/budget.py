"""Hard limits on what a run may spend, checked before every request is sent.

    guard = BudgetGuard(Budget(max_cost_usd=2.0), ledger, prices)
    hold = guard.reserve(input_tokens=900, output_tokens=64)   # BudgetExceeded: not sent
    ... send ...
    guard.settle(hold, input_tokens=870, output_tokens=41)      # recorded in the ledger

A request is sent only if what was spent, plus what requests in flight may still cost, plus this
request's worst case (its prompt and every token it may generate) stays within every limit. So a
run never spends past its budget, and it stops a little before it when the next worst case does
not fit. The ledger keeps the totals across attempts (a run's row in the store), so a re-run with
a higher limit continues from what was spent, not from zero.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import BudgetExceeded, ConfigError


class Priced(Protocol):
    """What the guard needs of a price list: the USD cost of a request's tokens."""

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float: ...


@dataclass(frozen=True)
class Budget:
    """Limits (None: no limit). Cost in USD, requests as HTTP requests sent, output tokens as
    generated tokens billed."""

    max_cost_usd: float | None = None
    max_requests: int | None = None
    max_output_tokens: int | None = None

    def __post_init__(self) -> None:
        c = self.max_cost_usd
        if c is not None and (
            isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c) or c < 0
        ):
            raise ConfigError(f"max_cost must be a number of USD >= 0, got {c!r}")
        for name in ("max_requests", "max_output_tokens"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise ConfigError(f"{name} must be an integer >= 0, got {v!r}")

    @property
    def active(self) -> bool:
        return any(
            v is not None for v in (self.max_cost_usd, self.max_requests, self.max_output_tokens)
        )


class Ledger(Protocol):
    """Where spending is recorded: totals of cost_usd, requests, input_tokens, output_tokens."""

    def spent(self) -> dict[str, Any]: ...

    def add(self, **amounts: float) -> dict[str, Any]: ...


@dataclass
class MemoryLedger:
    """A ledger for one invocation (generate, eval, serve, tests)."""

    totals: dict[str, Any] = field(default_factory=dict)

    def spent(self) -> dict[str, Any]:
        return dict(self.totals)

    def add(self, **amounts: float) -> dict[str, Any]:
        for k, v in amounts.items():
            self.totals[k] = self.totals.get(k, 0) + v
        return dict(self.totals)


@dataclass
class Hold:
    """What one request in flight may still cost."""

    cost_usd: float
    output_tokens: int
    settled: bool = False
    id: int = 0  # set by a guard that lives in another process (the ray executor's)


def spent_line(spent: dict[str, Any]) -> str:
    return (
        f"${float(spent.get('cost_usd', 0.0)):.4f} in {int(spent.get('requests', 0)):,} requests, "
        f"{int(spent.get('output_tokens', 0)):,} output tokens"
    )


class BudgetGuard:
    """Checks every request against a Budget before it is sent; thread-safe."""

    def __init__(self, budget: Budget, ledger: Ledger, prices: Priced):
        self.budget = budget
        self.ledger = ledger
        self.prices = prices
        self._spent = dict(ledger.spent())
        self._held_cost = 0.0
        self._held_requests = 0
        self._held_tokens = 0
        self._lock = threading.Lock()

    @property
    def spent(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._spent)

    def check_start(self) -> None:
        """BudgetExceeded when a limit leaves no room for even the smallest request (one token
        in, one out), before any request is sent."""
        with self._lock:
            self._check(self.prices.cost(1, 1), 1, 1, "no room is left for a single request")

    def _check(self, cost: float, requests: int, tokens: int, why: str) -> None:
        b, s = self.budget, self._spent
        over = []
        if b.max_cost_usd is not None:
            if float(s.get("cost_usd", 0.0)) + self._held_cost + cost > b.max_cost_usd + 1e-12:
                over.append(f"--max-cost {b.max_cost_usd:g}")
        if b.max_requests is not None:
            if int(s.get("requests", 0)) + self._held_requests + requests > b.max_requests:
                over.append(f"--max-requests {b.max_requests}")
        if b.max_output_tokens is not None:
            if int(s.get("output_tokens", 0)) + self._held_tokens + tokens > b.max_output_tokens:
                over.append(f"--max-output-tokens {b.max_output_tokens}")
        if over:
            raise BudgetExceeded(
                f"budget reached ({', '.join(over)}): {why}; spent so far {spent_line(s)}. "
                "Everything so far is stored: run the same command with a higher limit to continue"
            )

    def reserve(self, input_tokens: int, output_tokens: int) -> Hold:
        """Hold the worst case of one request, or raise BudgetExceeded (it is then not sent)."""
        cost = self.prices.cost(input_tokens, output_tokens)
        with self._lock:
            self._check(
                cost,
                1,
                output_tokens,
                f"the next request may cost up to ${cost:.4f} and {output_tokens} output tokens",
            )
            self._held_cost += cost
            self._held_requests += 1
            self._held_tokens += output_tokens
        return Hold(cost, output_tokens)

    def settle(self, hold: Hold, input_tokens: int = 0, output_tokens: int = 0) -> float:
        """Record what a sent request cost (0 tokens for one that failed); returns its cost."""
        cost = self.prices.cost(input_tokens, output_tokens)
        with self._lock:
            if hold.settled:
                return cost
            hold.settled = True
            self._held_cost -= hold.cost_usd
            self._held_requests -= 1
            self._held_tokens -= hold.output_tokens
        totals = self.ledger.add(
            cost_usd=cost, requests=1, input_tokens=input_tokens, output_tokens=output_tokens
        )
        with self._lock:
            self._spent = dict(totals)
        return cost


def guard_provider(
    provider: Any, budget: Budget, ledger: Ledger | None = None, what: str = "this provider"
) -> BudgetGuard | None:
    """Put `budget` on an API provider (prices must be known) and check it leaves room for a
    request; None for a provider that costs nothing (then the budget must be empty). Used by
    generate, eval and serve (a ledger for that invocation) and by align (the run's ledger)."""
    if not costs_something(provider):
        if budget.active:
            raise ConfigError(
                "--max-cost / --max-requests / --max-output-tokens apply to API providers; "
                f"{what} costs nothing"
            )
        return None
    if budget.active:
        require_prices(provider)
    guard = BudgetGuard(budget, ledger if ledger is not None else MemoryLedger(), provider.prices)
    guard.check_start()
    if budget.active:
        provider.budget = guard
    return guard


def costs_something(provider: Any) -> bool:
    """An API provider with a price list (local providers cost nothing)."""
    return hasattr(provider, "budget") and hasattr(provider, "prices")


def require_prices(provider: Any) -> None:
    """ConfigError unless the provider's prices are known (never price an unknown model at $0)."""
    if not provider.prices.known:
        raise ConfigError(
            f"model '{getattr(provider, 'model_name', '?')}' at "
            f"{getattr(provider, 'base_url', '?')} is not in genai-prices' price list: give "
            "--price-input and --price-output (USD per 1M tokens; 0 for a free self-hosted "
            "endpoint)"
        )
