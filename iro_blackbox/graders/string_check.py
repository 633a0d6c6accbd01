"""`string_check`: compare a templated input with a templated reference; 1.0 or 0.0.

    {"type": "string_check", "name": "exact", "input": "{{ sample.output_text }}",
     "reference": "{{ item.answer }}", "operation": "eq"}

Operations (OpenAI's): eq (equal), ne (not equal), like (input contains reference),
ilike (contains, ignoring case).
"""

from __future__ import annotations

from typing import Any

from .common import BaseGrader, GraderContext, read_common
from .spec import SpecReader
from .template import Template

OPERATIONS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "like": lambda a, b: b in a,
    "ilike": lambda a, b: b.casefold() in a.casefold(),
}


class StringCheckGrader(BaseGrader):
    type_name = "string_check"

    def __init__(self, *, input: Template, reference: Template, operation: str, **base: Any):
        super().__init__(templates=[input, reference], **base)
        self.input = input
        self.reference = reference
        self.operation = operation

    @classmethod
    def from_spec(cls, spec: dict[str, Any], ctx: GraderContext) -> StringCheckGrader:
        r = SpecReader(spec, ctx.label(str(spec.get("name", spec.get("type")))))
        r.raw("type")
        name, error_score = read_common(r)
        inp = r.template("input", "{{ sample.output_text }}")
        ref = r.template("reference")
        op = r.choice("operation", list(OPERATIONS), what="operation")
        norm = r.finish()
        return cls(
            input=inp,
            reference=ref,
            operation=op,
            name=name,
            spec=norm,
            label=r.label,
            error_score=error_score,
        )

    def score_one(self, sample: dict[str, Any], item: dict[str, Any]) -> float:
        a = self.input.render(item, sample)
        b = self.reference.render(item, sample)
        return 1.0 if OPERATIONS[self.operation](a, b) else 0.0
