"""Building graders from specs: `load_grader` (what the user gave) and `build_grader` (one spec).

    grader = load_grader("sentiment")                       # a grader type that needs no settings
    grader = load_grader("graders/tone.json")               # a JSON spec file
    grader = load_grader('{"type": "string_check", ...}')   # inline JSON (or a dict)

A grader type is a factory `(spec: dict, ctx: GraderContext) -> Grader` that validates the whole
spec (raising ConfigError naming the bad key) before returning, registered in
iro_blackbox.registry.GRADERS under its "type" name (the built-ins are entry points of the group
`iro_blackbox.graders`, like any third-party type).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..registry import GRADERS
from .base import Grader
from .common import GraderContext, ProviderFactory
from .spec import read_spec_source

GraderFactory = Callable[[dict[str, Any], GraderContext], Grader]


def build_grader(spec: dict[str, Any], ctx: GraderContext) -> Grader:
    """Validate and build one grader from a spec dict (used for nested graders too)."""
    if not isinstance(spec, dict):
        where = f"grader '{ctx.parent}'" if ctx.parent else "grader spec"
        raise ConfigError(f"{where}: expected a grader object, got {type(spec).__name__}")
    name = spec.get("name", spec.get("type"))
    label = ctx.label(name if isinstance(name, str) else "?")
    t = spec.get("type")
    types = ", ".join(GRADERS.names())
    if t is None:
        raise ConfigError(f"{label}: missing required key 'type' (choose {types})")
    if not isinstance(t, str) or t not in GRADERS:
        raise ConfigError(f"{label}: unknown grader type {t!r} in key 'type' (choose {types})")
    grader = GRADERS.get(t)(spec, ctx)
    if not isinstance(grader, Grader):
        raise ConfigError(f"{label}: grader type '{t}' built {type(grader).__name__}, not a Grader")
    return grader


def load_grader(
    spec: str | dict[str, Any] | Path, *, provider_factory: ProviderFactory | None = None
) -> Grader:
    """Build a grader from a grader type's name, a JSON file path, inline JSON text or a dict.

    A bare type name (e.g. "sentiment") is the spec {"type": name}. The whole spec is validated
    here, before any generation: every problem is a ConfigError that names the grader and the
    key. `provider_factory(name, **kwargs) -> Provider` builds the providers of LLM judges
    (default: the registered provider of that name).
    """
    src = read_spec_source(spec, GRADERS)
    return build_grader(src.spec, GraderContext(src.base_dir, provider_factory))
