"""The aligned policy of a run: CBS over the run's provider, guided by its value models.

    policy = load_run("upbeat-1234abcd")
    [g.text for g in policy.generate(["Write a line about Mondays."])]

pi_T ∝ pi_base exp(sum_t V_t / beta): decoding is chunk-level beam search scored by
S = sum_t V_t(x, prefix) / beta_t. The answer is the best finished beam by S (no grader is needed
at generation time; `final="grader"` uses the run's grader where the prompts carry what it needs).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from .align_config import AlignConfig
from .dataset import Example, iter_examples, prompt_text
from .errors import InputError
from .store import Example as ExampleRow
from .store import Rollout, Store, ValueModelRecord, open_store
from .utils import derive_seed, stable_hash


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


class AlignedPolicy:
    def __init__(
        self,
        name: str,
        run_id: int,
        cfg: AlignConfig,
        store: Store,
        provider: Any,
        value_models: list[Any],
        betas: list[float],
    ):
        self.name = name
        self.run_id = run_id
        self.cfg = cfg
        self.store = store
        self.provider = provider
        self.value_models = value_models
        self.betas = betas
        self._grader = None

    @property
    def grader(self) -> Any:
        if self._grader is None:
            from .graders import load_grader

            self._grader = load_grader(self.cfg.grader)
        return self._grader

    def scorer(self, upto: int | None = None) -> Any:
        from .search import CombinedScorer

        n = len(self.value_models) if upto is None else upto
        return CombinedScorer(self.value_models[:n], self.betas[:n])

    def search_params(
        self,
        *,
        max_tokens: int | None = None,
        w: int | None = None,
        k: int | None = None,
        l: int | None = None,
        seed: int | None = None,
        stop: list[str] | None = None,  # noqa: E741
        temperature: float | None = None,
        top_p: float | None = None,
        n: int | None = None,
        final: str = "score",
    ) -> Any:
        from .params import SamplingParams
        from .search import SearchParams

        cfg = self.cfg
        sampling = SamplingParams(
            temperature=cfg.temperature if temperature is None else temperature,
            top_p=cfg.top_p if top_p is None else top_p,
            seed=derive_seed(cfg.seed, "generate") % (2**31) if seed is None else seed,
            stop=tuple(stop or ()),
        )
        return SearchParams(
            w=w or cfg.w,
            k=k or cfg.k,
            l=l or cfg.l,
            max_tokens=max_tokens or cfg.max_tokens,
            n=n,
            selection=cfg.selection,
            sampling=sampling,
            final=final,
        )

    async def asearch(
        self,
        examples: list[Example],
        params: Any,
        method: str = "cbs",
        upto: int | None = None,
        on_result: Callable[[Any], Any] | None = None,
        grader: Any = None,
    ) -> list[Any]:
        from .search import SEARCHES

        scorer = self.scorer(upto) if method == "cbs" else None
        return await SEARCHES[method](
            examples, self.provider, scorer, params, grader=grader, on_result=on_result
        )

    async def agenerate(
        self, prompts: list[str | list[dict[str, str]]], *, final: str = "score", **kw: Any
    ) -> list[Generation]:
        """Decode each prompt (text or chat messages) with the aligned policy."""
        params = self.search_params(final=final, **kw)
        exs = [
            Example(
                id=str(i), prompt=p, data={"prompt": p} if isinstance(p, str) else {"messages": p}
            )
            for i, p in enumerate(prompts)
        ]
        results = await self.asearch(exs, params, grader=self.grader if final == "grader" else None)
        by_id = {r.example.id: r for r in results}
        return [_generation(by_id[e.id]) for e in exs]

    def generate(self, prompts: list[str | list[dict[str, str]]], **kw: Any) -> list[Generation]:
        return asyncio.run(self._generate_and_close(prompts, **kw))

    async def _generate_and_close(self, prompts: Any, **kw: Any) -> list[Generation]:
        try:
            return await self.agenerate(prompts, **kw)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        await self.provider.aclose()

    def describe(self) -> dict[str, Any]:
        return {
            "run": self.name,
            "model": self.cfg.model,
            "provider": self.cfg.provider,
            "value_models": len(self.value_models),
            "w": self.cfg.w,
            "k": self.cfg.k,
            "l": self.cfg.l,
        }


def _generation(result: Any) -> Generation:
    best = result.best
    u = result.usage
    return Generation(
        text=best.text,
        finish_reason=best.finish_reason,
        prompt_tokens=u.prompt_tokens,
        completion_tokens=best.completion_tokens,
        score=best.score,
        reward=best.reward,
        chunks=list(getattr(best, "chunks", None) or [best.text]),
        usage=u.to_dict(),
    )


def load_run(
    run: str | int, db: str | Store | None = None, upto: int | None = None, **overrides: Any
) -> AlignedPolicy:
    """Load a run's aligned policy. `overrides`: options that do not change what the run learned
    (base_url, concurrency, device, no_cache), e.g. to serve from another machine."""
    from .adapters.factory import build_provider
    from .runs import find_run
    from .value import ValueModel

    store = db if isinstance(db, Store) else open_store(db)
    row = find_run(store, run)
    d = dict(row.config)
    for k, v in overrides.items():
        if v is not None:
            if k not in ("base_url", "concurrency", "device", "no_cache", "tokenizer"):
                raise InputError(f"load_run: option {k} cannot be overridden")
            d[k] = v
    cfg = AlignConfig.from_dict(d)
    with store.session() as s:
        recs = s.scalars(
            select(ValueModelRecord)
            .where(ValueModelRecord.run_id == row.id)
            .order_by(ValueModelRecord.t)
        ).all()
    if upto is not None:
        recs = [r for r in recs if r.t <= upto]
    models = []
    for r in recs:
        if not Path(r.path).is_dir():
            raise InputError(f"run '{row.name}': value model V_{r.t} is missing at {r.path}")
        models.append(ValueModel.load(r.path))
    if not models:
        raise InputError(f"run '{row.name}' has no trained value model yet (status {row.status})")
    provider = build_provider(cfg, store)
    return AlignedPolicy(row.name, row.id, cfg, store, provider, models, [cfg.beta] * len(models))


def generate_file(
    run: str | int,
    input_path: str | Path,
    output_path: str | Path,
    *,
    db: str | Store | None = None,
    progress: bool = True,
    cancel_check: Callable[[], bool] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    final: str = "score",
    **search: Any,
) -> dict[str, Any]:
    """Decode every prompt of a JSONL file with the aligned policy; write JSONL.

    Resumable: each answer is written to the store as it is made; a re-run skips them and
    the output file is written (atomically) from the store once all are done."""
    return asyncio.run(
        _generate_file(
            run,
            input_path,
            output_path,
            db=db,
            progress=progress,
            cancel_check=cancel_check,
            on_progress=on_progress,
            final=final,
            **search,
        )
    )


async def _generate_file(
    run: Any,
    input_path: Any,
    output_path: Any,
    *,
    db: Any,
    progress: bool,
    cancel_check: Any,
    on_progress: Any,
    final: str,
    **search: Any,
) -> dict[str, Any]:
    from .progress import RunProgress

    examples = list(iter_examples(input_path))  # validates the whole file before any work
    policy = load_run(run, db=db)
    store = policy.store
    tag = f"gen:{stable_hash([str(Path(input_path).resolve()), search, final])[:8]}:"
    pk: dict[str, int] = {}
    with store.session() as s:
        have = {
            r.ex_id: r
            for r in s.scalars(
                select(ExampleRow).where(
                    ExampleRow.run_id == policy.run_id, ExampleRow.ex_id.like(tag + "%")
                )
            )
        }
        for e in examples:
            key = tag + e.id
            if key not in have:
                row = ExampleRow(run_id=policy.run_id, ex_id=key, split="generate", data=e.data)
                s.add(row)
                s.flush()
                have[key] = row
            pk[e.id] = have[key].id
        done = set(
            s.scalars(
                select(Rollout.example_id).where(
                    Rollout.run_id == policy.run_id,
                    Rollout.phase == "generate",
                    Rollout.example_id.in_(list(pk.values())),
                )
            ).all()
        )
    todo = [e for e in examples if pk[e.id] not in done]
    T = len(policy.value_models)
    params = policy.search_params(final=final, **search)
    try:
        with RunProgress(
            progress, provider=policy.provider, on_progress=on_progress, cancel_check=cancel_check
        ) as prog:
            prog.stage(f"generate with {policy.name}", len(examples), len(examples) - len(todo))

            def on_result(result: Any) -> None:
                g = _generation(result)
                with store.session() as s:
                    s.add(
                        Rollout(
                            run_id=policy.run_id,
                            t=T,
                            phase="generate",
                            method="iro",
                            example_id=pk[result.example.id],
                            idx=0,
                            prompt=prompt_text(result.example.prompt),
                            response=g.text,
                            reward=g.reward,
                            score=g.score,
                            selected=True,
                            finish_reason=g.finish_reason,
                            completion_tokens=g.completion_tokens,
                            usage={**g.usage, "chunks": g.chunks},
                        )
                    )
                prog.advance(1, tokens=result.usage.completion_tokens)

            if todo:
                await policy.asearch(
                    todo,
                    params,
                    on_result=on_result,
                    grader=policy.grader if final == "grader" else None,
                )
            prog.finish_stage()
    finally:
        await policy.aclose()
    with store.session() as s:
        rows = {
            r.example_id: r
            for r in s.scalars(
                select(Rollout).where(
                    Rollout.run_id == policy.run_id,
                    Rollout.phase == "generate",
                    Rollout.example_id.in_(list(pk.values())),
                )
            )
        }
    out = Path(output_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for e in examples:
            r = rows[pk[e.id]]
            f.write(
                json.dumps(
                    {
                        "id": e.id,
                        "prompt": e.prompt,
                        "response": r.response,
                        "finish_reason": r.finish_reason,
                        "score": r.score,
                        "completion_tokens": r.completion_tokens,
                        "run": policy.name,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    os.replace(tmp, out)
    return {
        "run": policy.name,
        "prompts": len(examples),
        "generated": len(todo),
        "reused": len(examples) - len(todo),
        "output": str(out),
    }
