"""`iro-bb runs ...`: list and inspect alignment runs in the store."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..iro import runs as iro_runs
from ..iro.report import COLUMNS, table_rows
from .common import DbOption, console

app = typer.Typer(help="List and inspect alignment runs.", no_args_is_help=True)


def print_iterations(iterations: list[dict], title: str = "iterations (held-out prompts)") -> None:
    """The per-iteration table (same columns as the HTML report)."""
    t = Table(title=title)
    for _, head, _ in COLUMNS:
        t.add_column(head, justify="right")
    for row in table_rows(iterations):
        t.add_row(*row)
    console.print(t)


@app.command("list")
def list_runs(db: DbOption = None) -> None:
    """All runs in the store, newest first."""
    rows = iro_runs.list_runs(db)
    t = Table(title="runs")
    for col in ("name", "status", "model", "provider", "iterations", "best reward", "created"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            r["name"],
            r["status"],
            str(r["model"]),
            str(r["provider"]),
            str(r["iterations"]),
            "" if r["best_reward"] is None else f"{r['best_reward']:.3f}",
            r["created"],
        )
    console.print(t)
    if not rows:
        console.print("no runs yet: start one with `iro-bb align DATA.jsonl`")


@app.command("show")
def show(
    run: Annotated[str, typer.Argument(help="Run name or numeric id.")],
    db: DbOption = None,
) -> None:
    """One run: its configuration and a table per iteration."""
    info = iro_runs.run_summary(run, db)
    console.print(f"[bold]{info['name']}[/bold]  status={info['status']}  out={info['out_dir']}")
    cfg = Table(title="config", show_header=False)
    for k, v in info["config"].items():
        cfg.add_row(k, str(v))
    console.print(cfg)
    print_iterations(info["iterations"])
