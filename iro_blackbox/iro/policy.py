"""The aligned policy of a run: CBS over the run's provider, guided by its value models.

    policy = load_run("upbeat-1234abcd")
    [g.text for g in policy.generate(["Write a line about Mondays."])]
    # the same value models steering another provider or model (steer.py)
    load_run("upbeat-1234abcd", provider="openai", base_url=URL, model="big-model")

pi_T ∝ pi_base exp(sum_t V_t / beta): decoding is chunk-level beam search scored by
S = sum_t V_t(x, prefix) / beta_t (or, for a run with --policy rerank, N whole answers reranked by
S). The answer is the best complete answer by S (no grader is needed at generation time;
`final="grader"` uses the run's grader where the prompts carry what it needs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..dataset import Example
from ..errors import InputError
from ..graders import Grader, load_grader
from ..providers import Provider, build_provider
from ..providers.budget import Budget, Ledger, guard_provider
from ..registry import SEARCHES
from ..search import CombinedScorer, SearchParams, SearchResult
from ..store import RunRepository, Store, open_store
from ..value import load_saved
from .config import AlignConfig
from .preflight import guard_costs, negotiate
from .steer import Steering, decode_options
from .value_checks import gate_passed


@dataclass
class Generation:
    text: str
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    score: float | None = None  # S of the answer
    reward: float | None = None  # grader score, when final="grader"
    chunks: list[str] = field(default_factory=list)  # the chosen beam's chunks, in order
    usage: dict[str, Any] = field(default_factory=dict)  # the whole search's cost

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, result: SearchResult) -> Generation:
        """The answer of one prompt's search."""
        best, u = result.best, result.usage
        return cls(
            text=best.text,
            finish_reason=best.finish_reason,
            prompt_tokens=u.prompt_tokens,
            completion_tokens=best.completion_tokens,
            score=best.score,
            reward=best.reward,
            chunks=list(best.chunks or [best.text]),
            usage=u.to_dict(),
        )


class AlignedPolicy:
    def __init__(
        self,
        name: str,
        run_id: int,
        cfg: AlignConfig,
        store: Store,
        provider: Provider,
        value_models: list[Any],
        betas: list[float],
        chat: bool = False,
        steering: Steering | None = None,
        in_use: list[bool] | None = None,
    ):
        self.name = name
        self.run_id = run_id
        self.cfg = cfg
        self.store = store
        self.provider = provider
        self.value_models = value_models
        self.betas = betas
        self.chat = chat  # trained on chat messages: a text prompt is the user's message
        self.steering = steering  # another provider or model than the run's (steer.py)
        # V_t steers unless the run's gate rejected it (its beta is infinity: pi_t = pi_{t-1})
        self.in_use = list(in_use) if in_use is not None else [True] * len(value_models)
        if len(self.in_use) != len(value_models):
            raise ValueError("in_use must give one flag per value model")
        self.mode: str | None = None  # a steered provider's line from aprepare()
        self._prepared = False
        self._grader: Grader | None = None

    def as_prompt(self, prompt: str | list[dict[str, str]]) -> str | list[dict[str, str]]:
        """The prompt as the policy was trained to read it: a run trained on chat messages takes
        a plain-text prompt as one user message (its chat template applied, as in training);
        a run trained on text prompts continues text as it is."""
        if self.chat and isinstance(prompt, str):
            return [{"role": "user", "content": prompt}]
        return prompt

    def example(self, e: Example) -> Example:
        """`e` with its prompt as the policy reads it (see as_prompt)."""
        return Example(id=e.id, prompt=self.as_prompt(e.prompt), data=e.data, line=e.line)

    @property
    def grader(self) -> Grader:
        if self._grader is None:
            self._grader = load_grader(self.cfg.run.grader)
        return self._grader

    def used(self, upto: int | None = None) -> list[int]:
        """The t of each V_t (t <= upto) that steers: those the run's gate let through."""
        n = len(self.value_models) if upto is None else upto
        return [i + 1 for i in range(min(n, len(self.value_models))) if self.in_use[i]]

    def scorer(self, upto: int | None = None) -> CombinedScorer:
        use = [t - 1 for t in self.used(upto)]
        return CombinedScorer([self.value_models[i] for i in use], [self.betas[i] for i in use])

    def search_params(
        self,
        *,
        seed: int | None = None,
        n: int | None = None,
        final: str = "score",
        stop: list[str] | None = None,
        **search: Any,
    ) -> SearchParams:
        """Search parameters of the run, with `search` overrides (max_tokens, w, k, l,
        temperature, top_p) and the sampling seed (default: derived from the run's)."""
        kw: dict[str, Any] = {"n": n, "final": final, "stop": tuple(stop or ()), **search}
        if seed is None:
            return self.cfg.search_params("generate", **kw)
        return self.cfg.search.params(seed, concurrency=self.cfg.concurrency, **kw)

    async def asearch(
        self,
        examples: list[Example],
        params: SearchParams,
        method: str | None = None,
        upto: int | None = None,
        on_result: Callable[[SearchResult], Any] | None = None,
        grader: Grader | None = None,
    ) -> list[SearchResult]:
        """Search with `method` (default: the run's policy, cbs or rerank), guided by those of
        V_1..V_upto the run's gate let through (used)."""
        method = method or self.cfg.search.policy
        scorer = self.scorer(upto) if method in ("cbs", "rerank") else None
        return await SEARCHES.get(method)(
            examples, self.provider, scorer, params, grader=grader, on_result=on_result
        )

    async def agenerate(
        self, prompts: list[str | list[dict[str, str]]], *, final: str = "score", **kw: Any
    ) -> list[Generation]:
        """Decode each prompt (text or chat messages) with the aligned policy (a steered one
        probes its endpoint first, once: aprepare)."""
        params = self.search_params(final=final, **kw)
        await self.aprepare(chat_prompts=any(not isinstance(p, str) for p in prompts))
        exs = [
            Example(
                id=str(i),
                prompt=self.as_prompt(p),
                data={"prompt": p} if isinstance(p, str) else {"messages": p},
            )
            for i, p in enumerate(prompts)
        ]
        results = await self.asearch(exs, params, grader=self.grader if final == "grader" else None)
        by_id = {r.example.id: r for r in results}
        return [Generation.of(by_id[e.id]) for e in exs]

    def generate(self, prompts: list[str | list[dict[str, str]]], **kw: Any) -> list[Generation]:
        return asyncio.run(self._generate_and_close(prompts, **kw))

    async def _generate_and_close(self, prompts: Any, **kw: Any) -> list[Generation]:
        try:
            return await self.agenerate(prompts, **kw)
        finally:
            await self.aclose()

    async def aprepare(self, chat_prompts: bool = True) -> str | None:
        """Before a steered policy's first request, as align before a run's: probe the endpoint
        (or reuse its stored probe) and settle how it continues a partial answer, refusing with
        the fix when the policy needs that and no mode can (vllm: its engine started). The line
        that says which mode runs; None for the run's own provider (nothing changes there) or
        one with nothing to settle. Once per policy (agenerate calls it); `chat_prompts`: some
        prompts are chat messages."""
        if self.steering is None or self._prepared:
            return self.mode
        self.mode = await negotiate(self.cfg, self.provider, chat_prompts=chat_prompts or self.chat)
        self._prepared = True
        return self.mode

    async def aclose(self) -> None:
        await self.provider.aclose()

    def describe(self) -> dict[str, Any]:
        return {
            "run": self.name,
            "model": self.cfg.provider.model,
            "provider": self.cfg.provider.provider,
            "steering": self.steering.to_dict() if self.steering else None,
            "value_models": len(self.value_models),
            "used": [f"V_{t}" for t in self.used()],
            "w": self.cfg.search.w,
            "k": self.cfg.search.k,
            "l": self.cfg.search.l,
        }


def load_run(
    run: str | int,
    db: str | Store | None = None,
    upto: int | None = None,
    budget: Budget | None = None,
    ledger: Ledger | None = None,
    **overrides: Any,
) -> AlignedPolicy:
    """Load a run's aligned policy. `overrides`: provider options that do not change what the run
    learned (base_url, concurrency, rpm, tpm, device, no_cache, ...), e.g. to serve from another
    machine; or another provider or model for the run's value models to steer (provider, model,
    base_url, tokenizer, api_mode, api_key_env, price_input/price_output, ...: which stored
    options still hold is steer.py's rule). `budget`: limits on what this policy may spend at an
    API provider from now on (the run's own --max-cost applied to aligning it, not to its later
    use); `ledger`: where that spending is counted (default: this call only; a job's ledger spans
    its attempts). A steered policy is refused as align refuses a run, before any request: an
    API model whose prices are unknown, a budget with no room; `await policy.aprepare()` then
    probes the endpoint and settles how it continues answers."""
    store = db if isinstance(db, Store) else open_store(db)
    repo = RunRepository(store)
    row = repo.find(run)
    d, steering = decode_options(row.config, overrides, "load_run")
    cfg = AlignConfig.from_dict(d)
    records = repo.value_models(row.id, upto)
    if not records:
        raise InputError(f"run '{row.name}' has no trained value model yet (status {row.status})")
    for r in records:
        if not Path(r.path).is_dir():
            raise InputError(f"run '{row.name}': value model V_{r.t} is missing at {r.path}")
    provider = build_provider(cfg.provider, store)
    if steering is None:
        what = f"run '{row.name}' ({cfg.provider.provider})"
        guard_provider(provider, budget or Budget(), ledger, what=what)
    else:
        what = f"run '{row.name}' steering {steering.label()}"
        guard_costs(provider, budget or Budget(), ledger, what=what)
    device, precision = cfg.provider.device or "auto", cfg.value.value_precision
    models = [load_saved(r.path, device=device, precision=precision) for r in records]
    betas = cfg.search.betas(len(models))
    chat = repo.trained_on_chat(row.id)
    in_use = [gate_passed(cfg, r.metrics) for r in records]
    return AlignedPolicy(
        row.name, row.id, cfg, store, provider, models, betas,
        chat=chat, steering=steering, in_use=in_use,
    )  # fmt: skip
