"""The `iro-bb` console script. It only parses options and calls the library.

Every failure is one clear line on stderr and a non-zero exit, never a traceback:
- a usage error (unknown command or option, bad value, missing argument): the usage line, the
  error line, exit 2;
- an iro-bb error (bad data, an unreachable server, ...): the error line, exit 1 (2 for bad input).
"""

from __future__ import annotations

import os
import sys

# library progress bars (GGUF de-quantisation, weight loading) would drown our own
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TQDM_DISABLE", "1")  # transformers converts GGUF files under a raw tqdm bar
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from typing import Annotated, Any  # noqa: E402

import typer  # noqa: E402
from rich.markup import escape  # noqa: E402

from .. import __version__  # noqa: E402
from ..errors import IroError  # noqa: E402
from . import align, cache, data, evaluate, generate, grader, jobs, probe, runs, serve  # noqa: E402
from .common import err_console  # noqa: E402

PROG = "iro-bb"

app = typer.Typer(
    name=PROG,
    help="Align a frozen language model to your task with value-guided chunk-level search (IRO).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"{PROG} {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print the iro-bb version and exit.",
        ),
    ] = False,
) -> None:
    """Align a frozen language model to your task with value-guided chunk-level search (IRO)."""


app.add_typer(data.app, name="data")
app.add_typer(runs.app, name="runs")
app.add_typer(cache.app, name="cache")
app.add_typer(jobs.app, name="jobs")
app.add_typer(grader.app, name="grader")
app.command("align")(align.align_cmd)
app.command("generate")(generate.generate_cmd)
app.command("eval")(evaluate.eval_cmd)
app.command("serve")(serve.serve_cmd)
app.command("probe")(probe.probe_cmd)
app.command("worker")(jobs.worker_cmd)


def _is_click_error(e: BaseException) -> bool:
    """An error of the click inside typer (a bad option, a missing argument, a bad value). Told
    by its public shape, not by class: typer >= 0.26 carries its own click in the private
    typer._click, older typer uses the click package."""
    return callable(getattr(e, "format_message", None)) and hasattr(e, "exit_code")


def _is_usage_error(e: BaseException) -> bool:
    """A usage error: the click errors that carry the command's context."""
    return hasattr(e, "ctx")


def _usage_error(e: Any) -> int:
    """The usage line and one error line on stderr; exit 2."""
    if type(e).__name__ == "NoArgsIsHelpError":  # a group without a command: its help (as typer)
        typer.echo(e.format_message(), err=True)
        return 2
    ctx = getattr(e, "ctx", None)
    if ctx is not None:
        typer.echo(ctx.get_usage(), err=True)
    err_console.print(
        f"[red]error:[/red] {escape(e.format_message())}", highlight=False, soft_wrap=True
    )
    return int(getattr(e, "exit_code", 2) or 2)


def main(argv: list[str] | None = None) -> int:
    """Entry point: errors become one clear line and a non-zero exit, never a traceback."""
    try:
        app(args=argv, prog_name=PROG, standalone_mode=False)
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        err_console.print("aborted")
        return 1
    except IroError as e:
        err_console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
        return e.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception as e:
        if not _is_click_error(e):
            raise
        if _is_usage_error(e):
            return _usage_error(e)
        err_console.print(f"[red]error:[/red] {escape(e.format_message())}", highlight=False)  # type: ignore[attr-defined]
        return int(getattr(e, "exit_code", 1) or 1)
    return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
