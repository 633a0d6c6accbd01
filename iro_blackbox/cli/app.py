"""The `iro-bb` console script. It only parses options and calls the library."""

from __future__ import annotations

import sys

import click
import typer
from rich.markup import escape

from ..errors import IroError
from . import cache, data, runs
from .common import err_console

app = typer.Typer(
    name="iro-bb",
    help="Align a frozen language model to your task with value-guided chunk-level search (IRO).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.app, name="data")
app.add_typer(runs.app, name="runs")
app.add_typer(cache.app, name="cache")

# Command groups added by later modules register themselves here.
_EXTRA = ("align", "generate", "evaluate", "jobs", "serve")
for _mod in _EXTRA:
    try:
        __import__(f"{__package__}.{_mod}", fromlist=["register"]).register(app)
    except ModuleNotFoundError as _e:  # module not written yet
        if _e.name != f"{__package__}.{_mod}":
            raise


def main(argv: list[str] | None = None) -> int:
    """Entry point: package errors become one clear line and a non-zero exit, never a traceback."""
    try:
        app(args=argv, standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        err_console.print("aborted")
        return 1
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except IroError as e:
        err_console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
        return e.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
