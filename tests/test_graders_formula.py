"""`multi` formulas whose result is not a finite real number for some sample: a recorded grade
error for that sample, the others graded, never a crash."""

from __future__ import annotations

import asyncio

import pytest

from iro_blackbox.graders import load_grader
from iro_blackbox.graders.formula import Formula


def test_non_real_and_non_finite_results_are_grade_errors():
    g = load_grader(
        {
            "type": "multi",
            "name": "m",
            "error_score": -5,
            "graders": {"tone": {"type": "sentiment"}},
            "calculate_output": "tone ^ 0.5",
        }  # fmt: skip
    )
    out = asyncio.run(g.grade(["What a wonderful, lovely day!", "This is awful and I hate it."],
                              [{}, {}]))  # fmt: skip
    assert out[0].error is None and out[0].score == pytest.approx(out[0].details["tone"] ** 0.5)
    assert out[1].details["tone"] < 0
    assert out[1].score == -5 and "is not a real number" in out[1].error
    assert out[1].error.startswith("calculate_output: ValueError")


@pytest.mark.parametrize(
    "text,values",
    [("a ^ 0.5", {"a": -4.0}), ("a * 1e308 * 10", {"a": 1.0}), ("(a * 1e308 * 10) - (a * 1e308 * 10)", {"a": 1.0}),
     ("(-8) ** (1/3)", {"a": 0.0})],
)  # fmt: skip
def test_formula_raises_value_error_for_what_is_not_a_finite_real(text, values):
    with pytest.raises(ValueError):
        Formula.parse(text, "a").evaluate(values)
