"""`iro-bb cache ...`: the request cache in the store."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..store import RequestCacheStore, open_store
from .common import DbOption, console

app = typer.Typer(help="Inspect or clear the request cache.", no_args_is_help=True)


@app.command("stats")
def stats(db: DbOption = None) -> None:
    """Cached responses and replay hits, per provider."""
    st = RequestCacheStore(open_store(db)).stats()
    t = Table(title="request cache")
    t.add_column("provider")
    t.add_column("entries", justify="right")
    t.add_column("hits", justify="right")
    for p, v in sorted(st["by_provider"].items()):
        t.add_row(p, str(v["entries"]), str(v["hits"]))
    t.add_row("[bold]total[/bold]", str(st["entries"]), str(st["hits"]))
    console.print(t)


@app.command("clear")
def clear(
    provider: Annotated[
        str | None, typer.Option(help="Only this provider's entries (default: all).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    db: DbOption = None,
) -> None:
    """Delete cached responses."""
    if not yes and not typer.confirm("Delete cached responses?"):
        raise typer.Abort()
    n = RequestCacheStore(open_store(db)).clear(provider)
    console.print(f"deleted {n} cached responses")
