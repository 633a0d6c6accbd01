"""The align options as Typer parameters, generated from AlignConfig's fields and help texts (one
help panel per part of the config), so `iro-bb align` and `iro-bb jobs submit align` share one
definition."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import MISSING
from pathlib import Path
from typing import Annotated, Any

import typer

from ..iro.config import PARTS, AlignConfig

_SKIP = ("data",)
_SHORT = {"model": ["-m"], "iterations": ["-T"], "grader": ["-g"]}


def _hints() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _, cls, _ in PARTS:
        out.update(typing.get_type_hints(cls))
    return out


def align_parameters() -> list[inspect.Parameter]:
    """DATA argument + one option per AlignConfig field (+ --resume), each with its help text."""
    params = [
        inspect.Parameter(
            "data",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=Annotated[
                Path | None,
                typer.Argument(
                    help="Training prompts (JSONL), one {'prompt'} or {'messages'} per line.",
                    show_default=False,
                ),
            ],
            default=None,
        )
    ]
    hints = _hints()
    for _, f, panel in AlignConfig.fields():
        if f.name in _SKIP:
            continue
        tp = hints[f.name]
        default = None if f.default is MISSING else f.default
        flag = "--" + f.name.replace("_", "-")
        names: list[str]
        if tp is bool:
            names = [f"{flag}/--no-{f.name.replace('_', '-')}"] if default else [flag]
        else:
            names = [flag, *_SHORT.get(f.name, [])]
        option = typer.Option(*names, help=f.metadata.get("help", ""), rich_help_panel=panel)
        params.append(
            inspect.Parameter(
                f.name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[tp, option],
                default=default,
            )
        )
    params.append(
        inspect.Parameter(
            "resume",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[
                str | None,
                typer.Option(
                    "--resume",
                    help="Continue the run with this name (its stored options are used; --iterations may grow).",
                    rich_help_panel=PARTS[0][2],
                ),
            ],
            default=None,
        )
    )
    return params


def with_align_options(
    extra: list[inspect.Parameter],
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give `fn(**kwargs)` a signature of the align parameters plus `extra` ones (for Typer)."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(**kwargs: Any) -> Any:
            return fn(**kwargs)

        wrapper.__signature__ = inspect.Signature(align_parameters() + extra)  # type: ignore[attr-defined]
        wrapper.__name__ = fn.__name__
        wrapper.__doc__ = fn.__doc__
        return wrapper

    return deco


def given_options() -> set[str] | None:
    """Names of the parameters the user gave (on the command line or through an environment
    variable) to the command being run, or None outside a command."""
    try:  # typer >= 0.20 carries its own copy of click
        from typer._click.globals import get_current_context
    except ImportError:  # pragma: no cover - older typer on top of click
        from click import get_current_context
    ctx = get_current_context(silent=True)
    if ctx is None:
        return None
    out = set()
    for p in ctx.command.params:
        source = ctx.get_parameter_source(p.name) if p.name else None
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            out.add(p.name)
    return out


def split_options(kwargs: dict[str, Any]) -> tuple[str | None, str | None, dict[str, Any]]:
    """(data, resume, AlignConfig options; when resuming, only the ones the user gave: the
    others come from the run's stored config)."""
    data = kwargs.pop("data", None)
    resume = kwargs.pop("resume", None)
    given = given_options() if resume is not None else None
    opts = {}
    for _, f, _ in AlignConfig.fields():
        if f.name in kwargs:
            v = kwargs.pop(f.name)
            if resume is None:
                opts[f.name] = v
            elif given is not None:
                if f.name in given:
                    opts[f.name] = v
            elif v != f.default:  # called outside a command line: what differs from defaults
                opts[f.name] = v
    return (str(data) if data is not None else None), resume, opts
