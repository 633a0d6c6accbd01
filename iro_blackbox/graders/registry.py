"""Grader types by name, named built-in graders, and `load_grader`.

    grader = load_grader("sentiment")                       # a named built-in
    grader = load_grader("graders/tone.json")               # a JSON spec file
    grader = load_grader('{"type": "string_check", ...}')   # inline JSON (or a dict)

A grader type is a factory `(spec: dict, ctx: GraderContext) -> Grader` that validates the whole
spec (raising ConfigError naming the bad key) before returning. Built-in types register through
`register_grader_type` like anyone else; third-party packages may declare entry points in the group
`iro_blackbox.graders`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .base import Grader
from .common import GraderContext, ProviderFactory
from .spec import read_spec_source

GraderFactory = Callable[[dict[str, Any], GraderContext], Grader]

_TYPES: dict[str, Any] = {}
_NAMED: dict[str, dict[str, Any]] = {}
_loaded = False


def register_grader_type(type_name: str, factory: GraderFactory) -> None:
    """Register a grader type: specs with {"type": type_name} are built by `factory`."""
    _TYPES[type_name] = factory


def register_named_grader(name: str, spec: dict[str, Any]) -> None:
    """Register a spec under a short name usable as `load_grader(name)` / `--grader name`."""
    _NAMED[name] = dict(spec)


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from importlib.metadata import entry_points

    from . import builtin  # noqa: F401  (registers the built-in types and named graders)

    for ep in entry_points(group="iro_blackbox.graders"):
        _TYPES.setdefault(ep.name, ep)


def grader_types() -> list[str]:
    _ensure_loaded()
    return sorted(_TYPES)


def named_graders() -> dict[str, dict[str, Any]]:
    _ensure_loaded()
    return {k: dict(v) for k, v in _NAMED.items()}


def build_grader(spec: dict[str, Any], ctx: GraderContext) -> Grader:
    """Validate and build one grader from a spec dict (used for nested graders too)."""
    _ensure_loaded()
    if not isinstance(spec, dict):
        where = f"grader '{ctx.parent}'" if ctx.parent else "grader spec"
        raise ConfigError(f"{where}: expected a grader object, got {type(spec).__name__}")
    name = spec.get("name", spec.get("type"))
    label = ctx.label(name if isinstance(name, str) else "?")
    t = spec.get("type")
    if t is None:
        raise ConfigError(
            f"{label}: missing required key 'type' (choose {', '.join(sorted(_TYPES))})"
        )
    if not isinstance(t, str) or t not in _TYPES:
        raise ConfigError(
            f"{label}: unknown grader type {t!r} in key 'type' (choose {', '.join(sorted(_TYPES))})"
        )
    factory = _TYPES[t]
    if hasattr(factory, "load") and hasattr(factory, "group"):  # an entry point
        factory = factory.load()
        _TYPES[t] = factory
    grader = factory(spec, ctx)
    if not isinstance(grader, Grader):
        raise ConfigError(f"{label}: grader type '{t}' built {type(grader).__name__}, not a Grader")
    return grader


def load_grader(
    spec: str | dict[str, Any] | Path, *, provider_factory: ProviderFactory | None = None
) -> Grader:
    """Build a grader from a built-in name, a JSON file path, inline JSON text or a dict.

    The whole spec is validated here, before any generation: every problem is a ConfigError that
    names the grader and the key. `provider_factory(name, **kwargs) -> Provider` builds the
    providers of LLM judges (default: iro_blackbox.adapters.get_provider).
    """
    _ensure_loaded()
    src = read_spec_source(spec, _NAMED)
    return build_grader(src.spec, GraderContext(src.base_dir, provider_factory))
