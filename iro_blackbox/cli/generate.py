"""`iro-bb generate --run RUN prompts.jsonl -o out.jsonl`: decode with the aligned policy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import DbOption, console


def generate_cmd(
    prompts: Annotated[
        Path, typer.Argument(help="Prompts (JSONL): {'prompt'} or {'messages'} per line.")
    ],
    run: Annotated[
        str, typer.Option("--run", "-r", help="Run name (or id) whose aligned policy decodes.")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the answers (JSONL).")
    ],
    max_tokens: Annotated[
        int | None, typer.Option(help="Maximum answer length (default: the run's).")
    ] = None,
    w: Annotated[int | None, typer.Option(help="Beams W (default: the run's).")] = None,
    k: Annotated[
        int | None, typer.Option(help="Successors per beam K (default: the run's).")
    ] = None,
    l: Annotated[
        int | None, typer.Option(help="Chunk length L in tokens (default: the run's).")
    ] = None,  # noqa: E741
    seed: Annotated[
        int | None, typer.Option(help="Sampling seed (default: derived from the run's).")
    ] = None,
    final: Annotated[
        str,
        typer.Option(help="Pick the answer among the W beams by: score (value models) or grader."),
    ] = "score",
    db: DbOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Answer every prompt with the run's aligned policy. Resumable: re-run to continue."""
    from ..errors import ConfigError
    from ..policy import generate_file

    if final not in ("score", "grader"):
        raise ConfigError(f"--final must be score or grader, got {final!r}")
    search = {
        k_: v
        for k_, v in {"max_tokens": max_tokens, "w": w, "k": k, "l": l, "seed": seed}.items()
        if v is not None
    }
    res = generate_file(run, prompts, output, db=db, progress=not quiet, final=final, **search)
    console.print(
        f"{res['prompts']} answers ({res['generated']} new, {res['reused']} from the store) -> {res['output']}"
    )


def register(app: typer.Typer) -> None:
    app.command("generate")(generate_cmd)
