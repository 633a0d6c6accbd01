"""`iro-bb generate --run RUN prompts.jsonl -o out.jsonl`: decode with the aligned policy."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import ConfigError
from .common import (
    DbOption,
    FinalOption,
    KOption,
    LOption,
    MaxCostOption,
    MaxOutputTokensOption,
    MaxRequestsOption,
    MaxTokensOption,
    OutputOption,
    PromptsArg,
    RpmOption,
    RunOption,
    SeedOption,
    TpmOption,
    WOption,
    budget_of,
    console,
    rate_limits,
)


def generate_cmd(
    prompts: PromptsArg,
    run: RunOption,
    output: OutputOption,
    max_tokens: MaxTokensOption = None,
    w: WOption = None,
    k: KOption = None,
    l: LOption = None,
    seed: SeedOption = None,
    final: FinalOption = "score",
    db: DbOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    max_cost: MaxCostOption = None,
    max_requests: MaxRequestsOption = None,
    max_output_tokens: MaxOutputTokensOption = None,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
) -> None:
    """Answer every prompt with the run's aligned policy. Resumable: re-run to continue."""
    from ..iro.generate import generate_file  # heavy: torch

    if final not in ("score", "grader"):
        raise ConfigError(f"--final must be score or grader, got {final!r}")
    search = {
        k_: v
        for k_, v in {"max_tokens": max_tokens, "w": w, "k": k, "l": l, "seed": seed}.items()
        if v is not None
    }
    budget = budget_of(max_cost, max_requests, max_output_tokens)
    res = generate_file(
        run,
        prompts,
        output,
        db=db,
        progress=not quiet,
        final=final,
        budget=budget,
        overrides=rate_limits(rpm, tpm),
        **search,
    )
    console.print(
        f"{res['prompts']} answers ({res['generated']} new, {res['reused']} from the store) -> {res['output']}"
    )
    if res["spent"].get("requests"):
        console.print(f"API requests {res['spent']['requests']:,}, ${res['spent']['cost_usd']:.4f}")
