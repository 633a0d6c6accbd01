"""The align options as Typer parameters, generated from AlignConfig's fields and help texts, so
`iro-bb align` and `iro-bb jobs submit align` share one definition."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Annotated, Any

import typer

from ..align_config import AlignConfig

_SKIP = ("data",)
_SHORT = {"model": ["-m"], "iterations": ["-T"], "grader": ["-g"]}


def _annotation(tp: Any) -> Any:
    hints = typing.get_type_hints(AlignConfig)
    return hints[tp]


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
    for f in fields(AlignConfig):
        if f.name in _SKIP:
            continue
        tp = _annotation(f.name)
        default = None if f.default is MISSING else f.default
        flag = "--" + f.name.replace("_", "-")
        names: list[str]
        if tp is bool:
            names = [f"{flag}/--no-{f.name.replace('_', '-')}"] if default else [flag]
        else:
            names = [flag, *_SHORT.get(f.name, [])]
        params.append(
            inspect.Parameter(
                f.name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[tp, typer.Option(*names, help=f.metadata.get("help", ""))],
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
    """(data, resume, AlignConfig options that differ from the defaults)."""
    data = kwargs.pop("data", None)
    resume = kwargs.pop("resume", None)
    opts = {}
    for f in fields(AlignConfig):
        if f.name in kwargs:
            v = kwargs.pop(f.name)
            if resume is None or v != f.default:
                opts[f.name] = v
    return (str(data) if data is not None else None), resume, opts
