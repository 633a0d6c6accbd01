"""The built-in grader types and named graders, registered like any third-party one."""

from __future__ import annotations

from .multi import MultiGrader
from .python_grader import PythonGrader
from .registry import register_grader_type, register_named_grader
from .score_model import score_model_from_spec
from .sentiment import SentimentGrader
from .string_check import StringCheckGrader
from .text_similarity import TextSimilarityGrader

register_grader_type("string_check", StringCheckGrader.from_spec)
register_grader_type("text_similarity", TextSimilarityGrader.from_spec)
register_grader_type("python", PythonGrader.from_spec)
register_grader_type("score_model", score_model_from_spec)
register_grader_type("multi", MultiGrader.from_spec)
register_grader_type("sentiment", SentimentGrader.from_spec)

# the demo's reward: VADER compound score of the response, -1..1
register_named_grader("sentiment", {"type": "sentiment", "name": "sentiment"})
