"""What a run will ask its provider for, before it asks: requests, input and output tokens and
dollars, per stage and in total (the pre-flight, preflight.py, prints it before the run's first
request; `iro-bb align --dry-run` prints it and stops).

The plan is the loop's (loop.py): the base policy's N = W*K samples per held-out prompt, then per
iteration the rollouts (t = 1: R samples per training prompt; t > 1: ceil(R/W) guided searches)
and the evaluation of pi_t on the held-out prompts. Whole answers cost one request per prompt
where the server honours `n` (else, or while that is not known, one per sample). A chunk-level search runs ceil(max_tokens/L)
steps; each step extends at most W beams by K chunks of at most L tokens, the prompt and the answer
so far going in again. Figures are upper bounds on what is generated (an answer that ends early
costs less); prompts the store already holds answers for (a resumed run) cost nothing, and its
finished iterations are left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from ..dataset import Example
from .config import AlignConfig

PROBE_REQUESTS = 14  # at most, when no probe of the endpoint is stored (a dozen tiny requests)
PROBE_TOKENS = 40  # input + output tokens of one probe request, at most


@dataclass
class Stage:
    name: str
    prompts: int  # prompts still to do
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


@dataclass
class Estimate:
    stages: list[Stage] = field(default_factory=list)
    n_honoured: bool | None = None  # None: not known (no stored probe)
    prices_source: str = ""

    @property
    def total(self) -> Stage:
        t = Stage("total", sum(s.prompts for s in self.stages))
        for s in self.stages:
            t.requests += s.requests
            t.input_tokens += s.input_tokens
            t.output_tokens += s.output_tokens
            t.cost_usd += s.cost_usd
        return t

    def rows(self) -> list[list[str]]:
        return [
            [
                s.name,
                f"{s.prompts:,}",
                f"{s.requests:,}",
                f"{s.input_tokens:,}",
                f"{s.output_tokens:,}",
                f"${s.cost_usd:.4f}",
            ]  # fmt: skip
            for s in [*self.stages, self.total]
        ]

    def to_dict(self) -> dict[str, Any]:
        t = self.total
        return {
            "stages": [vars(s) for s in self.stages],
            "total": vars(t),
            "n_honoured": self.n_honoured,
            "prices": self.prices_source,
        }


class Planner:
    """Adds up the plan of one run (see the module docstring)."""

    def __init__(
        self,
        cfg: AlignConfig,
        count: Callable[[Any], int],
        cost: Callable[[int, int], float],
        n_honoured: bool | None,
    ):
        self.cfg = cfg
        self.count = count  # prompt -> its input tokens (the chat template included)
        self.cost = cost  # (input, output) tokens -> USD
        self.n = bool(n_honoured)  # not known: one request per sample (the upper bound)

    def whole(self, stage: Stage, examples: list[Example], samples: int) -> None:
        """`samples` whole answers of max_tokens for each example."""
        mt = self.cfg.search.max_tokens
        greedy = self.cfg.search.temperature == 0
        for e in examples:
            p = self.count(e.prompt)
            reqs = 1 if (self.n or greedy) else samples
            per_out = mt if greedy else mt * samples // reqs
            self._add(stage, reqs, p, per_out)

    def cbs(self, stage: Stage, examples: list[Example], searches: int = 1) -> None:
        """`searches` chunk-level beam searches for each example."""
        s = self.cfg.search
        steps = math.ceil(s.max_tokens / s.l)
        for e in examples:
            p = self.count(e.prompt)
            for step in range(steps):
                prefix = step * s.l
                chunk = min(s.l, s.max_tokens - prefix)
                reqs = s.w if self.n else s.w * s.k
                per_out = chunk * s.k * s.w // reqs
                for _ in range(searches):
                    self._add(stage, reqs, p + prefix, per_out)

    def _add(self, stage: Stage, requests: int, input_tokens: int, output_tokens: int) -> None:
        stage.requests += requests
        stage.input_tokens += requests * input_tokens
        stage.output_tokens += requests * output_tokens
        stage.cost_usd += requests * self.cost(input_tokens, output_tokens)


def estimate(
    cfg: AlignConfig,
    train: list[Example],
    evals: list[Example],
    *,
    count: Callable[[Any], int],
    cost: Callable[[int, int], float],
    n_honoured: bool | None,
    probe_needed: bool,
    remaining: Callable[[int, str, str, int, list[Example]], list[Example]] | None = None,
    train_examples: Callable[[int], list[Example]] | None = None,
    policy: str = "cbs",
    prices_source: str = "",
    done: Collection[int] = (),
) -> Estimate:
    """The plan of `cfg` on these prompts. `remaining(t, phase, method, search, examples)`
    leaves out what the store already holds (a resumed run); the stages of the iterations in
    `done` (t = 0: the base policy) are left out whole (a run resumed with more iterations: only
    the new ones are still to do)."""
    plan = Planner(cfg, count, cost, n_honoured)
    todo = remaining or (lambda _t, _ph, _m, _s, exs: exs)
    per_iter = train_examples or (lambda _t: train)
    est = Estimate(n_honoured=n_honoured, prices_source=prices_source)
    if probe_needed:
        st = Stage("probe the endpoint", 0, PROBE_REQUESTS, PROBE_REQUESTS * PROBE_TOKENS // 2,
                   PROBE_REQUESTS * 8, PROBE_REQUESTS * cost(PROBE_TOKENS // 2, 8))  # fmt: skip
        est.stages.append(st)
    n = cfg.search.n
    if 0 not in done:
        exs = todo(0, "eval", "best_of_n", 0, evals)
        st = Stage(f"t=0 base policy: {n} samples per held-out prompt", len(exs))
        plan.whole(st, exs, n)
        est.stages.append(st)
    for t in range(1, cfg.run.iterations + 1):
        if t in done:
            continue
        tr = per_iter(t)
        if t == 1:
            exs = todo(1, "train", "sample", 0, tr)
            st = Stage(f"t=1 rollouts: {cfg.n_rollouts} samples per prompt", len(exs))
            plan.whole(st, exs, cfg.n_rollouts)
        else:
            searches = math.ceil(cfg.n_guided_rollouts / cfg.search.w)
            st = Stage(f"t={t} rollouts: {searches} {policy} searches per prompt", 0)
            for r in range(searches):
                exs = todo(t, "train", policy, r, tr)
                st.prompts += len(exs)
                if policy == "cbs":
                    plan.cbs(st, exs)
                else:
                    plan.whole(st, exs, n)
        est.stages.append(st)
        exs = todo(t, "eval", policy, 0, evals)
        st = Stage(f"t={t} evaluate pi_{t} ({policy})", len(exs))
        if policy == "cbs":
            plan.cbs(st, exs)
        else:
            plan.whole(st, exs, n)
        est.stages.append(st)
    return est
