"""What every built-in grader shares: name, canonical spec, spec hash, error score, batching.

A subclass reads its keys with a SpecReader in `from_spec`, then implements either
`score_one(sample, item) -> float | Grade` (cheap, synchronous graders) or `_grade(samples, items)`
(batched or concurrent backends). A failure on one sample becomes
Grade(score=error_score, error="message"); it never stops the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, GraderError, InputError
from ..utils import stable_hash
from .base import Grade, Grader
from .spec import SpecReader
from .template import Template, sample_view

ProviderFactory = Callable[..., Any]  # (name, **kwargs) -> Provider


@dataclass
class GraderContext:
    """What building a grader may need besides its spec."""

    base_dir: Path = field(default_factory=Path.cwd)  # relative `file` paths resolve here
    provider_factory: ProviderFactory | None = None  # default: the registered provider
    parent: str = ""  # dotted name of the enclosing multi grader, for messages

    def label(self, name: str) -> str:
        return f"grader '{self.parent}.{name}'" if self.parent else f"grader '{name}'"

    def child(self, parent_name: str) -> GraderContext:
        dotted = f"{self.parent}.{parent_name}" if self.parent else parent_name
        return GraderContext(self.base_dir, self.provider_factory, dotted)


def read_common(r: SpecReader, default_error_score: float = 0.0) -> tuple[str, float]:
    """Read `name` (default: the type), `error_score` (the score a failed sample gets) and, where
    given, OpenAI's `pass_threshold` (each grade's details then say `passed`: score >= it)."""
    name = r.text("name", r.spec.get("type"))
    error_score = r.number("error_score", default_error_score)
    if "pass_threshold" in r.spec:
        r.number("pass_threshold")
    return name, error_score


def _finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


class BaseGrader:
    """Shared behaviour of the built-in graders (implements the Grader protocol)."""

    type_name: str = ""

    def __init__(
        self,
        *,
        name: str,
        spec: dict[str, Any],
        label: str,
        error_score: float = 0.0,
        templates: Iterable[Template] = (),
        hash_extra: Any = None,
        hash_exclude: Iterable[str] = (),
        notes: Iterable[str] = (),
    ):
        self.name = name
        self.notes = list(notes)  # spec keys accepted but not acted on (shown by grader validate)
        self.spec = spec
        self.label = label
        self.error_score = error_score
        self.templates = list(templates)
        self.pass_threshold: float | None = spec.get("pass_threshold")
        exclude = set(hash_exclude)
        hashed = {k: v for k, v in spec.items() if k not in exclude}
        self._spec_hash = stable_hash({"spec": hashed, "extra": hash_extra})

    @property
    def spec_hash(self) -> str:
        return self._spec_hash

    # validation against data -------------------------------------------------------------------
    def check_items(self, items: Iterable[dict[str, Any]]) -> None:
        """Raise ConfigError if an item lacks a field a template needs (call before generating)."""
        for i, item in enumerate(items):
            for t in self.templates:
                missing = t.missing_in(item)
                if missing:
                    raise ConfigError(
                        f"{self.label}: item {i} has no field '{missing}' used in key '{t.key}'"
                    )

    # grading -----------------------------------------------------------------------------------
    async def grade(self, samples: list[str], items: list[dict[str, Any]]) -> list[Grade]:
        check_batch(self.label, samples, items)
        if not samples:
            return []
        return self.mark_passed(await self._grade([sample_view(s) for s in samples], list(items)))

    def mark_passed(self, grades: list[Grade]) -> list[Grade]:
        """details.passed on every grade when the spec has a pass_threshold (a failed sample never
        passes)."""
        t = self.pass_threshold
        if t is not None:
            for g in grades:
                g.details["passed"] = g.error is None and g.score >= t
        return grades

    async def _grade(
        self, samples: list[dict[str, Any]], items: list[dict[str, Any]]
    ) -> list[Grade]:
        return [self.safe_score(s, it) for s, it in zip(samples, items, strict=True)]

    def safe_score(self, sample: dict[str, Any], item: dict[str, Any]) -> Grade:
        try:
            out = self.score_one(sample, item)
        except GraderError as e:
            return self.failed(str(e))
        except Exception as e:  # a metric library failing on one odd text must not stop a batch
            return self.failed(f"{type(e).__name__}: {e}")
        if isinstance(out, Grade):
            return out
        x = _finite(out)
        return Grade(score=x) if x is not None else self.failed(f"non-finite score {out!r}")

    def score_one(self, sample: dict[str, Any], item: dict[str, Any]) -> float | Grade:
        raise NotImplementedError

    def failed(self, message: str, **details: Any) -> Grade:
        return Grade(score=self.error_score, error=message, details=details)

    # lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Release processes / models (no-op for pure-Python graders)."""

    async def aclose(self) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, hash={self.spec_hash[:12]})"


def check_batch(label: str, samples: list[str], items: list[dict[str, Any]]) -> None:
    if len(samples) != len(items):
        raise InputError(f"{label}: got {len(samples)} samples but {len(items)} items")
    for i, s in enumerate(samples):
        if not isinstance(s, str):
            raise InputError(f"{label}: sample {i} is {type(s).__name__}, expected a string")


def as_grader(obj: Any) -> Grader:
    """Type guard used by wrappers (CachedGrader, multi)."""
    if not isinstance(obj, Grader):
        raise ConfigError(f"not a grader: {obj!r}")
    return obj
