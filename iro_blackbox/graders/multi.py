"""`multi`: several graders combined by a formula over their names.

    {"type": "multi", "name": "combo",
     "graders": {"tone": {"type": "sentiment"},
                 "length": {"type": "python", "source": "def grade(s, i): ..."}},
     "calculate_output": "0.7*tone + 0.3*length"}

`graders` is an object (name -> grader, as OpenAI's guide writes it) or a list of graders named
by their `name` (as its API reference does). `pass_threshold` marks details.passed.

Sub-graders run concurrently. When a sub-grader fails on a sample, the combined grade for that
sample is the multi grader's error_score with the sub-grader's message; sub-scores are always in
Grade.details. The spec hash covers the sub-graders' hashes (so a python file edit counts).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from .base import Grade, Grader
from .build import build_grader
from .common import BaseGrader, GraderContext, check_batch, read_common
from .formula import Formula, FormulaError
from .spec import SpecReader


class MultiGrader(BaseGrader):
    type_name = "multi"

    def __init__(self, *, graders: dict[str, Grader], formula: Formula, **base: Any):
        super().__init__(**base)
        self.graders = graders
        self.formula = formula

    @classmethod
    def from_spec(cls, spec: dict[str, Any], ctx: GraderContext) -> MultiGrader:
        r = SpecReader(spec, ctx.label(str(spec.get("name", spec.get("type")))))
        r.raw("type")
        name, error_score = read_common(r)
        subs_spec = r.spec.get("graders")
        if isinstance(subs_spec, list):  # OpenAI's API reference writes a list, named by `name`
            as_map: dict[str, Any] = {}
            for i, sub in enumerate(subs_spec):
                key = sub.get("name") if isinstance(sub, dict) else None
                r.check("graders", isinstance(key, str), f"graders[{i}] has no 'name'")
                r.check("graders", key not in as_map, f"two graders are named '{key}'")
                as_map[key] = sub
            subs_spec = as_map
            r.spec = {**r.spec, "graders": as_map}
        subs_spec = r.mapping("graders")
        r.check("graders", bool(subs_spec), "no graders")
        child = ctx.child(name)
        graders: dict[str, Grader] = {}
        for key, sub in subs_spec.items():
            r.check("graders", key.isidentifier(), f"name '{key}' is not usable in a formula")
            if isinstance(sub, dict) and "name" not in sub:
                sub = {**sub, "name": key}
            graders[key] = build_grader(sub, child)
        text = r.text("calculate_output")
        try:
            formula = Formula.parse(text, graders)
        except FormulaError as e:
            raise r.error("calculate_output", e.what, e.hint) from None
        norm = r.finish()
        norm["graders"] = {k: g.spec for k, g in graders.items()}
        return cls(
            graders=graders,
            formula=formula,
            name=name,
            spec=norm,
            label=r.label,
            error_score=error_score,
            hash_extra={k: g.spec_hash for k, g in graders.items()},
            hash_exclude=("graders",),
        )

    def check_items(self, items: Any) -> None:
        items = list(items)
        for g in self.graders.values():
            check = getattr(g, "check_items", None)
            if check is not None:
                check(items)

    async def grade(self, samples: list[str], items: list[dict[str, Any]]) -> list[Grade]:
        check_batch(self.label, samples, items)
        if not samples:
            return []
        names = list(self.graders)
        results = await asyncio.gather(*(self.graders[n].grade(samples, items) for n in names))
        out = []
        for i in range(len(samples)):
            subs = {n: results[k][i] for k, n in enumerate(names)}
            details: dict[str, Any] = {n: g.score for n, g in subs.items()}
            errors = {n: g.error for n, g in subs.items() if g.error}
            if errors:
                details["errors"] = errors
                msg = "; ".join(f"{n}: {e}" for n, e in errors.items())
                out.append(Grade(score=self.error_score, error=msg, details=details))
                continue
            try:
                score = self.formula.evaluate({n: g.score for n, g in subs.items()})
                if not math.isfinite(score):
                    raise ArithmeticError(f"result is {score}")
            except (ArithmeticError, ValueError) as e:
                out.append(self.failed(f"calculate_output: {type(e).__name__}: {e}", **details))
                continue
            out.append(Grade(score=score, details=details))
        return self.mark_passed(out)

    def close(self) -> None:
        for g in self.graders.values():
            close = getattr(g, "close", None)
            if close is not None:
                close()

    async def aclose(self) -> None:
        for g in self.graders.values():
            aclose, close = getattr(g, "aclose", None), getattr(g, "close", None)
            if aclose is not None:
                await aclose()
            elif close is not None:
                close()
