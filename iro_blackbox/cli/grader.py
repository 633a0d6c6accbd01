"""`iro-bb grader test|validate`: try a grader before paying for a run (OpenAI's /graders/run and
/graders/validate, locally)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import GraderError, InputError
from .common import console

app = typer.Typer(
    help="Try a grader on samples (like OpenAI's /graders/run) or check its spec.",
    no_args_is_help=True,
)

GraderArg = Annotated[
    str,
    typer.Argument(
        help="Grader: a built-in name, a JSON spec file (an OpenAI RFT grader as it is, or "
        '{"grader": {...}}) or inline JSON.'
    ),
]


def _item(text: str | None) -> dict:
    if text is None:
        return {}
    src = text
    p = Path(text)
    if not text.lstrip().startswith("{") and p.is_file():
        src = p.read_text(encoding="utf-8")
    try:
        item = json.loads(src)
    except json.JSONDecodeError as e:
        raise InputError(f"--item: invalid JSON at column {e.colno}: {e.msg}") from None
    if not isinstance(item, dict):
        raise InputError(f"--item must be a JSON object, got {type(item).__name__}")
    return item


@app.command("test")
def test_cmd(
    grader: GraderArg,
    sample: Annotated[
        str | None,
        typer.Option(
            "--sample",
            "-s",
            help="One model answer to grade ({{ sample.output_text }}; JSON text also fills "
            "sample.output_json).",
            show_default=False,
        ),
    ] = None,
    item: Annotated[
        str | None,
        typer.Option(
            "--item",
            "-i",
            help="The dataset item ({{ item.* }}): a JSON object or a .json file.",
            show_default=False,
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Items: a JSONL dataset (with --samples).", show_default=False),
    ] = None,
    samples: Annotated[
        Path | None,
        typer.Option(
            "--samples",
            help="Answers (JSONL): a string, or an object with output_text or response (what "
            "`iro-bb generate` writes), per line; matched to --data by 'id' or by line.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each answer as JSON, one per line.")
    ] = False,
) -> None:
    """Grade samples: reward, sub-rewards, pass and errors, per line. Exits non-zero when any
    sample failed to grade."""
    from ..graders import load_grader
    from ..graders.run import pair_samples, run_grader

    if (sample is None) == (samples is None):
        raise InputError(
            "grader test: give --sample TEXT [--item JSON], or --data FILE --samples FILE"
        )
    if samples is not None and data is None:
        raise InputError("grader test: --samples needs --data (the items the samples answer)")
    if sample is not None and data is not None:
        raise InputError("grader test: --data goes with --samples, not with --sample")
    g = load_grader(grader)
    if sample is not None:
        rows = [("--sample", sample, _item(item))]
    else:
        assert data is not None and samples is not None
        rows = [
            (f"{samples}:{line}", text, e.data) for e, text, line in pair_samples(data, samples)
        ]
    answers = run_grader(g, [r[1] for r in rows], [r[2] for r in rows])
    errors = sum(1 for a in answers if a.get("error"))
    failed = GraderError(f"{errors} of {len(answers)} sample(s) failed to grade (see above)")
    if as_json:
        for (where, _, _), a in zip(rows, answers, strict=True):
            typer.echo(json.dumps({"where": where, **a}, ensure_ascii=False))
        if errors:
            raise failed
        return
    t = Table(title=f"grader {g.name} ({g.spec.get('type')})")
    t.add_column("sample")
    t.add_column("reward", justify="right")
    subs = sorted({k for a in answers for k in a["sub_rewards"]})
    for k in subs:
        t.add_column(k, justify="right")
    has_pass = any("passed" in a for a in answers)
    if has_pass:
        t.add_column("passed")
    t.add_column("error / warning", overflow="fold")
    for (where, _, _), a in zip(rows, answers, strict=True):
        cells = [escape(where), f"{a['reward']:.4f}"]
        cells += [
            f"{a['sub_rewards'][k]:.4f}" if isinstance(a["sub_rewards"].get(k), float) else ""
            for k in subs
        ]
        if has_pass:
            cells.append("yes" if a.get("passed") else "no")
        note = a.get("error") or a.get("warning") or ""
        cells.append(f"[red]{escape(note)}[/red]" if a.get("error") else escape(note))
        t.add_row(*cells)
    console.print(t)
    mean = sum(a["reward"] for a in answers) / len(answers)
    console.print(f"{len(answers)} sample(s), mean reward {mean:.4f}, {errors} error(s)")
    if errors:
        raise failed


@app.command("validate")
def validate_cmd(grader: GraderArg) -> None:
    """Check a grader spec: every key, with one clear line for a problem; print what it reads."""
    from ..graders import load_grader
    from ..graders.fields import fields_read

    g = load_grader(grader)
    console.print(f"[green]ok[/green]: grader {escape(g.name)} ({g.spec.get('type')})")
    fields = fields_read(g)
    if fields:
        shown = ", ".join(f"item.{k} ({how})" for k, how in sorted(fields.items()))
        console.print(f"reads {escape(shown)}")
    for sub in [g, *(getattr(g, "graders", None) or {}).values()]:
        for note in getattr(sub, "notes", []):
            console.print(f"[yellow]note[/yellow] {escape(sub.name)}: {escape(note)}")
