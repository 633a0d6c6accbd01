"""Options and output helpers shared by the CLI commands."""

from __future__ import annotations

import sys
from pathlib import Path
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
        help="Store: a SQLite file path or any SQLAlchemy URL (postgresql+psycopg://USER:PASS@HOST/DB for a store shared by workers). "
        "Default: iro-runs/iro.db (or $IRO_HOME/iro.db).",
        show_default=False,
    ),
]

ApiKeyEnvOption = Annotated[
    str | None,
    typer.Option(
        "--api-key-env",
        help="The environment variable holding the API key for --base-url (default: the config "
        "file's entry for that URL, else OPENAI_API_KEY).",
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

# Options of decoding with an aligned run (`iro-bb generate` and `iro-bb jobs submit generate`).
PromptsArg = Annotated[
    Path, typer.Argument(help="Prompts (JSONL): {'prompt'} or {'messages'} per line.")
]
RunOption = Annotated[
    str, typer.Option("--run", "-r", help="Run name (or id) whose aligned policy decodes.")
]
OutputOption = Annotated[
    Path, typer.Option("--output", "-o", help="Where to write the answers (JSONL).")
]
MaxTokensOption = Annotated[
    int | None, typer.Option(help="Maximum answer length (default: the run's).")
]
WOption = Annotated[int | None, typer.Option(help="Beams W (default: the run's).")]
KOption = Annotated[int | None, typer.Option(help="Successors per beam K (default: the run's).")]
LOption = Annotated[int | None, typer.Option(help="Chunk length L in tokens (default: the run's).")]
SeedOption = Annotated[
    int | None, typer.Option(help="Sampling seed (default: derived from the run's).")
]
FinalOption = Annotated[
    str,
    typer.Option(help="Pick the answer among the W beams by: score (value models) or grader."),
]


MaxCostOption = Annotated[
    float | None,
    typer.Option(
        help="Stop before this command spends more than this many USD at the API provider "
        "(checked before each request).",
        show_default=False,
    ),
]
MaxRequestsOption = Annotated[
    int | None,
    typer.Option(
        help="Stop before this command sends more than this many API requests.", show_default=False
    ),
]
MaxOutputTokensOption = Annotated[
    int | None,
    typer.Option(
        help="Stop before this command generates more than this many output tokens.",
        show_default=False,
    ),
]


RpmOption = Annotated[
    int | None,
    typer.Option(
        "--rpm",
        help="openai-provider runs: send at most this many requests per minute (halved for a "
        "while after each 429 the server answers). Default: the run's.",
        show_default=False,
    ),
]
TpmOption = Annotated[
    int | None,
    typer.Option(
        "--tpm",
        help="openai-provider runs: send at most this many tokens (prompt + max output) per "
        "minute. Default: the run's.",
        show_default=False,
    ),
]


def rate_limits(rpm: int | None, tpm: int | None) -> dict[str, int]:
    """The --rpm / --tpm given, as load_run overrides (validated: one clear line)."""
    from ..params import check_positive_int

    given = {k: v for k, v in (("rpm", rpm), ("tpm", tpm)) if v is not None}
    for k, v in given.items():
        check_positive_int(f"--{k}", v)
    return given


def budget_of(max_cost: float | None, max_requests: int | None, max_output_tokens: int | None):
    """The Budget the three options give (validated: one clear line for a bad value)."""
    from ..providers.budget import Budget

    return Budget(max_cost, max_requests, max_output_tokens)


def check_output_path(path: Path | None, flag: str) -> None:
    """InputError unless `path` can be written: its folder exists and is writable and the path
    is not a folder (checked before any work, so results are never computed for nothing)."""
    import os

    from ..errors import InputError

    if path is None:
        return
    folder = path.expanduser().resolve().parent
    if path.is_dir():
        raise InputError(f"{flag} {path}: is a folder, give a file path")
    if not folder.is_dir():
        raise InputError(f"{flag} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InputError(f"{flag} {path}: not writable")
