"""The `iro-bb` console script. It only parses options and calls the library."""

from __future__ import annotations

import os
import sys

# library progress bars (GGUF de-quantisation, weight loading) would drown our own
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TQDM_DISABLE", "1")  # transformers converts GGUF files under a raw tqdm bar
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import click  # noqa: E402
import typer  # noqa: E402
from rich.markup import escape  # noqa: E402

from ..errors import IroError  # noqa: E402
from . import cache, data, runs  # noqa: E402
from .common import err_console  # noqa: E402

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
