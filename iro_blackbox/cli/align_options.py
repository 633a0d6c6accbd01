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
                    help="Continue the run with this name (its stored options are used).",
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


def split_options(kwargs: dict[str, Any]) -> tuple[str | None, str | None, dict[str, Any]]:
    """(data, resume, AlignConfig options; when resuming, only those that differ from the
    defaults, i.e. the ones the user gave)."""
    data = kwargs.pop("data", None)
    resume = kwargs.pop("resume", None)
    opts = {}
    for _, f, _ in AlignConfig.fields():
        if f.name in kwargs:
            v = kwargs.pop(f.name)
            if resume is None or v != f.default:
                opts[f.name] = v
    return (str(data) if data is not None else None), resume, opts
