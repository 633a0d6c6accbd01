"""Small shared helpers: canonical hashing, plain JSON, seeds, mean and standard error, fields
with help."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import field, fields
from typing import Any

from .errors import ConfigError


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no spaces: the same object always gives the same string."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def stable_hash(obj: Any) -> str:
    """sha256 hex digest of the canonical JSON of obj."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def jsonable(obj: Any) -> Any:
    """obj as plain JSON types (through a JSON round trip; what JSON cannot hold becomes str)."""
    return json.loads(json.dumps(obj, default=str))


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed derived deterministically from any JSON-able parts."""
    return int(stable_hash(list(parts))[:15], 16)


def mean_stderr(xs: Sequence[float]) -> tuple[float | None, float | None]:
    """(mean, standard error of the mean); None where there are too few values (0, or < 2)."""
    if not xs:
        return None, None
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, None
    var = sum((x - m) ** 2 for x in xs) / (len(xs) - 1)
    return m, math.sqrt(var / len(xs))


def option(help: str, **kw: Any) -> Any:
    """A dataclass field whose help text lives next to it (the CLI reads it for --help)."""
    return field(metadata={"help": help}, **kw)


def dataclass_from_dict(cls: type, data: Any, what: str) -> Any:
    """`cls(**data)` for a dataclass, refusing unknown keys (ConfigError naming them)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must be a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown {what} key(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    return cls(**data)
