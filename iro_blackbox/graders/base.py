"""The grader seam: the user's reward.

    grader = load_grader("sentiment")              # built-in name, spec file, or inline JSON
    grades = await grader.grade(samples, items)    # one Grade per (sample text, item) pair

`items` are the dataset records (Example.data) that templates reference as `{{ item.field }}`;
`samples` are the response texts (`{{ sample.output_text }}`). A grader never raises for one bad
sample: it returns Grade(score=<error score>, error="message").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass
class Grade:
    score: float
    error: str | None = None  # set when the grader failed on this sample (score is the fallback)
    details: dict[str, Any] = field(default_factory=dict)  # sub-scores (multi), judge text, ...


@runtime_checkable
class Grader(Protocol):
    name: str  # the spec's name (or the built-in's)
    spec: dict[str, Any]  # the canonical spec (recorded with the run)

    @property
    def spec_hash(self) -> str:
        """Hash of everything that changes the grade (cache key part)."""
        ...

    async def grade(self, samples: list[str], items: list[dict[str, Any]]) -> list[Grade]: ...
