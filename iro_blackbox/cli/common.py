"""Options and output helpers shared by the CLI commands."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

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
