"""`generate_file`: answer every prompt of a JSONL file with a run's aligned policy.

Resumable: each answer is stored (the `generations` table) as soon as its search finishes; a
re-run with the same file and settings skips those, and the output file is written (atomically)
from the store once every prompt has its answer.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..dataset import iter_examples
from ..progress import RunProgress
from ..providers.budget import Budget, Ledger
from ..search import SearchResult
from ..store import RunRepository, Store
from ..utils import stable_hash
from .policy import Generation, load_run


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
    budget: Budget | None = None,
    ledger: Ledger | None = None,
    overrides: dict[str, Any] | None = None,
    **search: Any,
) -> dict[str, Any]:
    """Decode every prompt of `input_path` with the run's policy; write JSONL to `output_path`.
    `search`: max_tokens, w, k, l, seed overrides. `budget`: limits on this call's API spending
    (BudgetExceeded stops it with every finished answer stored; re-run to continue), counted in
    `ledger` (default: this call's own). `overrides`: provider options that do not change what
    the run learned (e.g. {"rpm": 60, "tpm": 100_000}), see load_run."""
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
            budget=budget,
            ledger=ledger,
            overrides=overrides,
            **search,
        )
    )


def batch_key(
    input_path: str | Path,
    search: dict[str, Any],
    final: str,
    steering: Any = None,
    left_out: list[int] | None = None,
) -> str:
    """What identifies one generation job's answers: the file, the search overrides, the pick,
    for a policy steering another model (steer.py) where it decodes, so that model's answers are
    never taken for the run's own (or another model's), and the t of value models the gate
    rejected (`left_out`: answers stored while those still steered are not reused)."""
    parts: list[Any] = [str(Path(input_path).resolve()), search, final]
    if steering is not None:
        parts.append(steering.to_dict())
    if left_out:
        parts.append({"left_out": left_out})
    return stable_hash(parts)[:8]


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
    budget: Budget | None = None,
    ledger: Ledger | None = None,
    overrides: dict[str, Any] | None = None,
    **search: Any,
) -> dict[str, Any]:
    examples = list(iter_examples(input_path))  # validates the whole file before any work
    policy = load_run(run, db=db, budget=budget, ledger=ledger, **(overrides or {}))
    repo = RunRepository(policy.store)
    steering = policy.steering
    left_out = [t for t in range(1, len(policy.value_models) + 1) if t not in policy.used()]
    batch = batch_key(input_path, search, final, steering, left_out)
    have = repo.generations(policy.run_id, batch)
    todo = [policy.example(e) for e in examples if e.id not in have]
    params = policy.search_params(final=final, **search)
    by_id = {e.id: e for e in examples}
    mode = None
    try:
        with RunProgress(
            progress, provider=policy.provider, on_progress=on_progress, cancel_check=cancel_check
        ) as prog:
            if todo and steering is not None:  # align's probe and refusal, before any answer
                mode = await policy.aprepare(chat_prompts=any(e.is_chat for e in todo))
                prog.log(f"steering {steering.label()}: {mode}" if mode else steering.label())
            prog.stage(f"generate with {policy.name}", len(examples), len(examples) - len(todo))

            def on_result(result: SearchResult) -> None:
                g = Generation.of(result)
                ex_id = result.example.id
                repo.add_generation(
                    policy.run_id,
                    batch,
                    ex_id,
                    by_id[ex_id].data,
                    response=g.text,
                    finish_reason=g.finish_reason,
                    score=g.score,
                    reward=g.reward,
                    completion_tokens=g.completion_tokens,
                    usage={**g.usage, "chunks": g.chunks},
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
        spent = policy.provider.stats.snapshot()
        await policy.aclose()
    answers = repo.generations(policy.run_id, batch)
    out = Path(output_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for e in examples:
            g = answers[e.id]
            record = {
                "id": e.id,
                "prompt": e.prompt,
                "response": g.response,
                "finish_reason": g.finish_reason,
                "score": g.score,
                "completion_tokens": g.completion_tokens,
                "run": policy.name,
            }
            if steering is not None:
                record["steered"] = steering.to_dict()
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(tmp, out)
    out_res: dict[str, Any] = {
        "run": policy.name,
        "prompts": len(examples),
        "generated": len(todo),
        "reused": len(examples) - len(todo),
        "output": str(out),
        "spent": spent,
    }
    if steering is not None:
        out_res["steered"] = {**steering.to_dict(), "label": steering.label(), "mode": mode}
    return out_res
