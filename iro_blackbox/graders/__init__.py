"""Graders: the user's reward, in OpenAI's reinforcement fine-tuning grader shapes.

    from iro_blackbox.graders import load_grader
    grader = load_grader("sentiment")                  # a type name, JSON file, inline JSON, dict
    grades = await grader.grade(["What a lovely day!"], [{}])

Types: string_check, text_similarity, python, score_model (LLM judge or local reward model),
multi, sentiment; registered in iro_blackbox.registry.GRADERS (third parties add their own there,
or through the entry-point group `iro_blackbox.graders`).
"""

from .base import Grade, Grader
from .build import GraderFactory, build_grader, load_grader
from .cache import CachedGrader, cached
from .common import BaseGrader, GraderContext
from .template import TemplateError, sample_view

__all__ = [
    "BaseGrader",
    "CachedGrader",
    "Grade",
    "Grader",
    "GraderContext",
    "GraderFactory",
    "TemplateError",
    "build_grader",
    "cached",
    "load_grader",
    "sample_view",
]
