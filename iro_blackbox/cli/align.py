"""`iro-bb align DATA.jsonl`: run (or resume) IRO and print the per-iteration table."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

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
    inspect.Parameter(
        "from_rft",
        inspect.Parameter.KEYWORD_ONLY,
        annotation=Annotated[
            Path | None,
            typer.Option(
                "--from-rft",
                help="Run an OpenAI reinforcement fine-tuning job description (the JSON body of "
                "POST /v1/fine_tuning/jobs): its training and validation files, grader and the "
                "hyperparameters that mean something here. Options given on the command line win.",
                show_default=False,
            ),
        ],
        default=None,
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
    from_rft = kwargs.pop("from_rft")
    data, resume, opts = split_options(kwargs)
    if from_rft is not None:
        data, opts = _from_rft(from_rft, data, resume, opts)
    if data is None and resume is None:
        raise InputError("align: give a DATA.jsonl file (or --resume RUN)")
    res = align(data, db=db, progress=not quiet, resume=resume, dry_run=dry_run, **opts)
    if dry_run:
        print_estimate(res.estimate, res.spent)
        return
    print_iterations(res.iterations)
    for it in res.iterations:
        warning = (it["metrics"].get("value") or {}).get("warning")
        if warning:
            console.print(f"[yellow]warning[/yellow] {escape(warning)}")
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


def _from_rft(job: Path, data: str | None, resume: str | None, opts: dict) -> tuple[str, dict]:
    """DATA and options from an RFT job; a value given on the command line wins."""
    from ..iro.config import AlignConfig
    from ..iro.rft import read_rft_job

    if data is not None or resume is not None:
        raise InputError("align: give DATA.jsonl, --resume RUN or --from-rft JOB.json, one of them")
    plan = read_rft_job(job, given=opts)
    defaults = {f.name: f.default for _, f, _ in AlignConfig.fields()}
    merged = dict(opts)
    t = Table(title=f"from RFT job {job}", show_lines=False)
    t.add_column("RFT field")
    t.add_column("iro-bb")
    for key, option, value in plan.mapped:
        name = option.lstrip("-").replace("-", "_")
        given = name in opts and opts[name] != defaults.get(name)
        if given:
            t.add_row(escape(key), escape(f"{option} (the command line's {opts[name]!r} wins)"))
            continue
        if name in plan.options:
            merged[name] = plan.options[name]
        t.add_row(escape(key), escape(f"{option} {value}" if option != "DATA" else f"DATA {value}"))
    for key, why in plan.unmapped:
        t.add_row(escape(key), f"[yellow]no counterpart[/yellow]: {escape(why)}")
    console.print(t)
    return plan.data, merged


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.3f}"
