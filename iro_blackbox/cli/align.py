"""`iro-bb align DATA.jsonl`: run (or resume) IRO and print the per-iteration table."""

from __future__ import annotations

import inspect
from typing import Annotated

import typer

from ..errors import InputError
from ..providers.budget import spent_line
from .align_options import split_options, with_align_options
from .common import DbOption, console
from .runs import print_estimate, print_iterations

EXTRA = [
    inspect.Parameter("db", inspect.Parameter.KEYWORD_ONLY, annotation=DbOption, default=None),
    inspect.Parameter(
        "quiet",
        inspect.Parameter.KEYWORD_ONLY,
        annotation=Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")],
        default=False,
    ),
    inspect.Parameter(
        "dry_run",
        inspect.Parameter.KEYWORD_ONLY,
        annotation=Annotated[
            bool,
            typer.Option(
                "--dry-run",
                help="Print what the run would ask its provider for (requests, tokens, dollars "
                "per stage) and stop: no request is sent, no run is created.",
            ),
        ],
        default=False,
    ),
]


@with_align_options(EXTRA)
def align_cmd(**kwargs) -> None:
    """Align the model to DATA: T iterations of rollouts, grading, value-model training, evaluation.

    Re-running the same command resumes where it stopped. Ends with the table and the report path.
    """
    from ..iro import align  # heavy: torch

    db = kwargs.pop("db")
    quiet = kwargs.pop("quiet")
    dry_run = kwargs.pop("dry_run")
    data, resume, opts = split_options(kwargs)
    if data is None and resume is None:
        raise InputError("align: give a DATA.jsonl file (or --resume RUN)")
    res = align(data, db=db, progress=not quiet, resume=resume, dry_run=dry_run, **opts)
    if dry_run:
        print_estimate(res.estimate, res.spent)
        return
    print_iterations(res.iterations)
    s = res.metrics
    if s.get("iro_mean_reward") is not None:
        console.print(
            f"held-out mean reward: base {s['base_mean_reward']:+.3f} -> IRO (t={s['iterations']}) "
            f"{s['iro_mean_reward']:+.3f} with no grader, {_f(s.get('iro_grader_reward'))} with "
            f"the grader's pick; Best-of-{s['bon_n']} by the grader {s['bon_mean_reward']:+.3f}; "
            f"win rate vs base {s['win_rate_vs_base']:.2f}"
        )
    if res.spent.get("requests"):
        console.print(f"paid to the provider: {spent_line(res.spent)}")
    console.print(f"run: [bold]{res.name}[/bold]")
    console.print(f"report: {res.report}")


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.3f}"
