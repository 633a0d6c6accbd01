"""`iro-bb data ...`: dataset validation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..dataset import check_dataset, load_examples
from ..errors import InputError
from ..tokenizers import load_tokenizer
from .common import console, err_console

app = typer.Typer(help="Validate and inspect JSONL datasets.", no_args_is_help=True)


def _check_grader_fields(file: Path, g: object, max_errors: int) -> None:
    from ..graders.fields import fields_read, missing_fields

    fields = fields_read(g)
    shown = ", ".join(f"item.{k} ({how})" for k, how in sorted(fields.items())) or "no item fields"
    console.print(f"grader {escape(getattr(g, 'name', '?'))} reads {escape(shown)}")
    missing = missing_fields(g, load_examples(file))
    for e, field in missing[:max_errors]:
        err_console.print(
            f"[red]error[/red] {escape(f'{file}:{e.line}')}: no field '{escape(field)}' (the "
            "grader reads it)",
            highlight=False,
            soft_wrap=True,
        )
    if missing:
        lines = len({e.line for e, _ in missing})
        raise InputError(f"{file}: {lines} line(s) lack a field the grader reads")


@app.command("check")
def check(
    file: Annotated[
        Path,
        typer.Argument(help="JSONL file: one {'prompt': ...} or {'messages': [...]} per line."),
    ],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="Count prompt tokens with this model's tokenizer (alias, folder, .gguf or hub id).",
        ),
    ] = "smollm2-135m-instruct",
    no_tokens: Annotated[
        bool,
        typer.Option("--no-tokens", help="Skip loading a tokenizer; do not report token lengths."),
    ] = False,
    max_errors: Annotated[int, typer.Option(help="Stop after this many bad lines.")] = 50,
    grader: Annotated[
        str | None,
        typer.Option(
            "--grader",
            "-g",
            help="Also check that every line has each item field this grader reads (a built-in "
            "name, JSON spec file or inline JSON).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Validate FILE line by line and print a summary (count, prompt tokens, fields)."""
    g = None
    if grader is not None:
        from ..graders import load_grader  # heavy: the grader's backends

        g = load_grader(grader)  # a bad spec fails before the file is read
    tokenizer = None if no_tokens else load_tokenizer(model)
    summary = check_dataset(file, tokenizer=tokenizer, max_errors=max_errors)
    if summary.errors:
        for e in summary.errors:
            err_console.print(f"[red]error[/red] {escape(e)}", highlight=False, soft_wrap=True)
        raise InputError(f"{file}: {len(summary.errors)} bad line(s)")
    if g is not None:
        _check_grader_fields(file, g, max_errors)
    t = Table(title=f"{file}", show_header=False)
    t.add_row("examples", str(summary.count))
    t.add_row("chat / text", f"{summary.chat} / {summary.text}")
    if summary.token_percentiles:
        p = summary.token_percentiles
        t.add_row(
            f"prompt tokens ({model})",
            f"min {p['min']:.0f}  p50 {p['p50']:.0f}  p90 {p['p90']:.0f}  p99 {p['p99']:.0f}  max {p['max']:.0f}",
        )
    t.add_row("fields", ", ".join(f"{k} ({n})" for k, n in summary.fields.items()))
    console.print(t)
    console.print(f"[green]ok[/green]: {summary.count} examples")
