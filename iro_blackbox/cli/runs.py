"""`iro-bb runs ...`: list and inspect alignment runs in the store."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..iro import runs as iro_runs
from ..iro.report import COLUMNS, table_rows
from ..providers.budget import spent_line
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


def print_estimate(est, spent: dict | None = None) -> None:
    """The table of a run's plan: requests, tokens and dollars per stage (align --dry-run)."""
    t = Table(title="estimate (upper bounds: answers that end early cost less)")
    for col in ("stage", "prompts", "requests", "input tokens", "output tokens", "cost"):
        t.add_column(col, justify="left" if col == "stage" else "right")
    for row in est.rows():
        t.add_row(*row)
    console.print(t)
    n = {True: "the server honours n", False: "the server ignores n (one request per sample)",
         None: "not probed yet: counted as if the server honours n"}[est.n_honoured]  # fmt: skip
    console.print(f"{n}; prices: {est.prices_source}")
    if spent and spent.get("requests"):
        console.print(f"already paid by this run: {spent_line(spent)}")


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
    if info["spent"].get("requests"):
        console.print(f"paid to the provider (every attempt): {spent_line(info['spent'])}")
    if info["error"] and info["status"] != "done":
        console.print(f"{info['status']}: {escape(info['error'])}", highlight=False)
