"""`iro-bb probe --base-url URL --model M`: what an OpenAI-compatible endpoint really does."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..providers.openai import probe_endpoint
from ..store import open_store
from .common import ApiKeyEnvOption, DbOption, console


def probe_cmd(
    base_url: Annotated[
        str, typer.Option("--base-url", help="Base URL of the API, e.g. http://127.0.0.1:8000/v1.")
    ],
    model: Annotated[str, typer.Option("--model", "-m", help="The model name the server knows.")],
    tokenizer: Annotated[
        str | None,
        typer.Option(
            help="The model's tokenizer (local folder, hub id or alias): lets the completions "
            "and token-ids modes render the chat template locally."
        ),
    ] = None,
    reprobe: Annotated[
        bool, typer.Option("--reprobe", help="Probe again instead of showing the stored result.")
    ] = False,
    api_key_env: ApiKeyEnvOption = None,
    db: DbOption = None,
) -> None:
    """Try every way the endpoint might continue a partial answer (a counting question: the
    answer so far "1, 2, 3, 4," must go on with "5"), and whether it honours n, seed, temperature
    and logprobs. About a dozen tiny requests; the result is stored and reused by runs."""
    caps = probe_endpoint(
        base_url,
        model,
        tokenizer=tokenizer,
        store=open_store(db),
        reprobe=reprobe,
        api_key_env=api_key_env,
    )
    t = Table(title=f"{model} at {base_url}" + (" (stored probe)" if caps.get("stored") else ""))
    for col in ("mode", "works", "evidence"):
        t.add_column(col)
    for mode, v in caps["modes"].items():
        works = "[green]yes[/]" if v["works"] else ("[red]no[/]" if v.get("tried") else "not tried")
        t.add_row(mode, works, escape(v["evidence"]))
    console.print(t)

    def yn(v: object) -> str:
        return {True: "yes", False: "no", None: "unknown"}.get(v, str(v))  # type: ignore[arg-type]

    console.print(
        f"n honoured: completions {yn(caps.get('completions_n'))}, chat {yn(caps.get('chat_n'))}; "
        f"seed honoured: {yn(caps.get('seed'))}; temperature accepted: "
        f"{yn(caps.get('temperature'))}; logprobs: completions "
        f"{yn(caps.get('completions_logprobs'))}, chat {yn(caps.get('chat_logprobs'))}; "
        f"echo scoring: {yn(caps.get('echo_score'))}",
        highlight=False,
    )
    for w in caps.get("warnings", []):
        console.print(f"[yellow]note:[/yellow] {escape(w)}", highlight=False)
    console.print(
        f"auto picks: [bold]{caps.get('choice_chat') or 'nothing'}[/bold] for chat prompts, "
        f"[bold]{caps.get('choice_text') or 'nothing'}[/bold] for text prompts",
        highlight=False,
    )
