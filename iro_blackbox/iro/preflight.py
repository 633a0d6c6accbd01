"""The pre-flight: everything a run checks and prints between its config and its first IRO step,
in one call the loop makes once (DESIGN.md: dataset -> pre-flight -> loop).

    plan = await preflight(cfg, provider, book, train, evals, display=start_display)
    plan.estimate.total.cost_usd, plan.budget, plan.mode

In this order, so that whatever can refuse a run does so before its first paid request:
1. prices and budget: an API provider's prices must be known and its budget must leave room for
   a request (a resumed run counts what it spent); a provider that costs nothing refuses a budget.
   This comes before the run exists, so a refusal leaves nothing behind.
2. the run opened (bookkeeping.py) and an API provider guarded: every request is checked against
   the budget and counted in the run's ledger.
3. the printed plan, in the run's live display (`display()` starts it): the run's first line, the
   estimate (estimate.py) and whether it is above a limit; for an endpoint never probed, the probe
   first (a dozen tiny requests, stored), then the estimate knowing whether the server honours n;
   the continuation mode; what earlier attempts spent.
A refusal in 3 before any request was sent removes a run this attempt created: nothing is left
half-written.

A policy that decodes elsewhere (a run's value models steering another provider or model:
policy.py, steer.py) goes through the same checks: `guard_costs` (1, before any request) and
`negotiate` (the probe and the continuation mode of 3).

`plan_only` is the dry run (`iro-bb align --dry-run`): the estimate alone, no run created and no
request sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..dataset import Example
from ..errors import IroError
from ..progress import RunProgress
from ..providers.budget import (
    Budget,
    BudgetGuard,
    MemoryLedger,
    costs_something,
    guard_provider,
    require_prices,
    spent_line,
)
from .bookkeeping import RunBook
from .config import AlignConfig
from .estimate import Estimate, estimate

Log = Callable[[str], None]


@dataclass
class Plan:
    """What the pre-flight settled before the run's first IRO step."""

    # what the run expects to ask its provider for (the last estimate printed; align() returns it)
    estimate: Estimate
    # the limits every request of the run is checked against (None: a provider that costs nothing)
    budget: Budget | None = None
    # the provider's answer to prepare(): how it continues a partial answer (None: nothing to ask)
    mode: str | None = None
    # what the run's ledger held once the pre-flight was done (earlier attempts and the probe)
    spent: dict[str, Any] = field(default_factory=dict)
    # this attempt created the run (False: it continues a stored one)
    created: bool = False


async def preflight(
    cfg: AlignConfig,
    provider: Any,
    book: RunBook,
    train: list[Example],
    evals: list[Example],
    *,
    display: Callable[[], RunProgress],
) -> Plan:
    """Prices, budget, the run opened, the printed plan and the probe (the module docstring).
    `display()` starts the run's live display once the run is open and returns it."""
    budget = check_costs(cfg, provider, book.stored_spent())  # before the run exists
    created = not book.exists()
    book.open(train, evals)
    if budget is not None:
        provider.budget = BudgetGuard(budget, book.ledger(), provider.prices)
    log = display().log
    book.start(provider, train, evals, log)
    try:
        est, mode = await _probe_and_estimate(cfg, provider, book, train, evals, log)
    except IroError:
        if created and not book.spent().get("requests"):
            book.discard_new()  # refused before any work: nothing half-written
        raise
    spent = book.spent()
    if spent.get("requests"):
        log(f"spent before this attempt: {spent_line(spent)}")
    return Plan(est, budget, mode, spent, created)


def plan_only(
    cfg: AlignConfig, provider: Any, book: RunBook, train: list[Example], evals: list[Example],
    log: Log,
) -> Estimate:  # fmt: skip
    """The dry run: the estimate printed (a stored run's finished work left out), nothing sent."""
    book.look_up()
    est = estimate_run(cfg, provider, book, train, evals)
    show_estimate(est, cfg, book.spent(), log)
    return est


def check_costs(cfg: AlignConfig, provider: Any, spent: dict[str, Any]) -> Budget | None:
    """Prices known and the budget not used up by what was `spent`: the budget API providers
    check every request against, or None for a provider with no cost."""
    opts = cfg.provider
    budget = Budget(opts.max_cost, opts.max_requests, opts.max_output_tokens)
    if not costs_something(provider):
        guard_provider(provider, budget, what=f"provider '{opts.provider}'")  # refuses a budget
        return None
    require_prices(provider)
    BudgetGuard(budget, MemoryLedger(dict(spent)), provider.prices).check_start()
    return budget


async def _probe_and_estimate(
    cfg: AlignConfig, provider: Any, book: RunBook, train: list[Example], evals: list[Example],
    log: Log,
) -> tuple[Estimate, str | None]:  # fmt: skip
    """The estimate, and (API providers) the continuation mode: only the tiny probe requests,
    if the endpoint was never probed, come before the estimate."""
    p = provider
    prepare = getattr(p, "prepare", None)
    stored = getattr(p, "stored_probe", None)  # API providers: what the endpoint can do
    probed = stored is None or stored() is not None
    est = mode = None
    if probed:  # nothing to ask the endpoint first: the estimate comes before any request
        est = estimate_run(cfg, p, book, train, evals)
        show_estimate(est, cfg, book.spent(), log)
    else:
        log(f"probing {p.base_url} first: a dozen tiny requests, stored")
    if prepare is not None:
        mode = await negotiate(cfg, p, chat_prompts=any(e.is_chat for e in train + evals))
        log(mode)
    if not probed:  # now knowing whether the endpoint honours n
        est = estimate_run(cfg, p, book, train, evals)
        show_estimate(est, cfg, book.spent(), log)
    assert est is not None
    return est, mode


async def negotiate(cfg: AlignConfig, provider: Any, chat_prompts: bool) -> str | None:
    """How the provider runs the plan: an API provider probes the endpoint (or reuses its stored
    probe) and settles the continuation mode, refusing with the fix when the run's policy needs
    a partial answer continued and no mode can (vllm starts its engine). The line that says so,
    or None for a provider with nothing to settle."""
    prepare = getattr(provider, "prepare", None)
    if prepare is None:
        return None
    return await prepare(needs_continuation=cfg.search.policy == "cbs", chat_prompts=chat_prompts)


def guard_costs(
    provider: Any, budget: Budget, ledger: Any = None, what: str = "this provider"
) -> BudgetGuard | None:
    """What align checks before a run exists, for a policy decoding elsewhere (a run's value
    models steering another model): an API provider's prices must be known (never priced at
    $0) and `budget` must leave room for a request; it then guards every request, counted in
    `ledger`. A provider that costs nothing refuses a budget. Nothing is sent."""
    if costs_something(provider):
        require_prices(provider)
    return guard_provider(provider, budget, ledger, what=what)


def estimate_run(
    cfg: AlignConfig, provider: Any, book: RunBook, train: list[Example], evals: list[Example]
) -> Estimate:
    """The estimate of this run on this provider (estimate.py), without what the store holds."""
    prices = getattr(provider, "prices", None)
    stored = provider.stored_probe() if hasattr(provider, "stored_probe") else None
    n_honoured = (stored or {}).get("n") if prices is not None else True
    return estimate(
        cfg,
        train,
        evals,
        count=_prompt_tokens(provider),
        cost=prices.cost if prices is not None else (lambda _i, _o: 0.0),
        n_honoured=n_honoured,
        probe_needed=prices is not None and stored is None,
        remaining=book.remaining,
        done=book.done_iterations(),
        train_examples=lambda t: cfg.train_prompts(train, t),
        policy=cfg.search.policy,
        prices_source=getattr(prices, "source", "local"),
    )


def _prompt_tokens(provider: Any) -> Callable[[Any], int]:
    """Input tokens of a prompt (the chat template included where a tokenizer is known)."""
    count = getattr(provider, "count_prompt", None)
    if count is not None:
        return count

    def guess(prompt: Any) -> int:
        text = prompt if isinstance(prompt, str) else json.dumps(prompt)
        return len(text) // 4 + 1

    return guess


def show_estimate(est: Estimate, cfg: AlignConfig, spent: dict[str, Any], log: Log) -> None:
    """Print the estimate, and say so when with what was `spent` it is above a limit."""
    t = est.total
    n = {True: "the server honours n", False: "the server ignores n: one request per sample",
         None: "not probed yet: counted as if the server ignores n, an upper bound"}[est.n_honoured]  # fmt: skip
    log(
        f"estimate before the run's first request ({n}; prices: {est.prices_source}): "
        f"{t.requests:,} requests, {t.input_tokens:,} input and at most {t.output_tokens:,} "
        f"output tokens, ${t.cost_usd:.4f}"
    )
    for row in est.rows()[:-1]:
        log(f"  {row[0]}: {row[2]} requests, {row[3]} in, {row[4]} out, {row[5]}")
    b = cfg.provider
    over = [
        f"{flag} {limit:g}"
        for flag, limit, need in (
            ("--max-cost", b.max_cost, t.cost_usd + float(spent.get("cost_usd", 0))),
            ("--max-requests", b.max_requests, t.requests + int(spent.get("requests", 0))),
            (
                "--max-output-tokens",
                b.max_output_tokens,
                t.output_tokens + int(spent.get("output_tokens", 0)),
            ),
        )  # fmt: skip
        if limit is not None and need > limit
    ]
    if over:
        log(
            f"the estimate is above {', '.join(over)}: the run may stop at that limit "
            "(everything stored; re-run with a higher one to continue)"
        )
