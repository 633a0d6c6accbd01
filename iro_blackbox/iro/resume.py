"""Resuming a run: which of its stored options a resumed run may change, and the config it
continues with."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .config import NOT_RESULTS, AlignConfig, ValueOptions

# What a resumed run may change: budgets, concurrency and where it runs (not its name or folder).
RESUMABLE = NOT_RESULTS - {"run_name", "out"}


def value_options() -> frozenset[str]:
    """The value-model options: nothing a run computes depends on them until its first value
    model is trained, so until then they may change on resume."""
    return frozenset(f.name for f in fields(ValueOptions))


def resume_config(
    stored: dict[str, Any], given: dict[str, Any], run: str, untrained: bool = False
) -> AlignConfig:
    """The config a resumed run continues with: its stored options, with the `given` ones that
    may change on resume (RESUMABLE; the value-model options too while the run has trained no
    value model: `untrained`) applied. A given option that equals the stored one (as the config
    reads it: --beta 1 is the run's 1.0) is fine; one that would change what the run computes is
    a ConfigError naming it."""
    resumable = RESUMABLE | (value_options() if untrained else frozenset())
    base = AlignConfig.from_dict(dict(stored))
    was = base.to_dict()
    d = dict(stored)
    for k, v in given.items():
        if v is None:
            continue
        now = AlignConfig.from_dict({**stored, k: v}).to_dict()[k]  # a bad value: its own error
        old = was.get(k)
        if k in ("data", "eval") and now and old:
            same = Path(now).resolve() == Path(old).resolve()
        else:
            same = now == old
        if same:
            continue
        if k not in resumable:
            flag = "DATA" if k == "data" else "--" + k.replace("_", "-")
            allowed = ", ".join("--" + n.replace("_", "-") for n in sorted(RESUMABLE))
            raise ConfigError(
                f"--resume {run}: {flag} {v} differs from the run's {old!r} and would change "
                f"what it computes; start a new run instead (a resumed run may change only "
                f"{allowed}, the value-model options until its first value model is trained, "
                "and raise --iterations)"
            )
        d[k] = v
    return AlignConfig.from_dict(d)
