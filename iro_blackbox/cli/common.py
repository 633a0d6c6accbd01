"""Options and output helpers shared by the CLI commands."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

# wide tables stay readable when the output goes to a file or a pipe (not a terminal)
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="IRO_DB",
        help="Store: a SQLite file path or any SQLAlchemy URL (postgresql://...). "
        "Default: iro-runs/iro.db (or $IRO_HOME/iro.db).",
        show_default=False,
    ),
]

ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Policy model: alias (smollm2-135m-instruct), local transformers folder, .gguf file "
        "or hub id. For --provider openai, the model name the server knows.",
    ),
]
