"""Graders: the user's reward, in OpenAI's reinforcement fine-tuning grader shapes.

    from iro_blackbox.graders import load_grader
    grader = load_grader("sentiment")                  # built-in name, JSON file, inline JSON, dict
    grades = await grader.grade(["What a lovely day!"], [{}])

Types: string_check, text_similarity, python, score_model (LLM judge or local reward model),
multi, sentiment. New types: `register_grader_type(name, factory)`.
"""

from .base import Grade, Grader
from .cache import CachedGrader, cached
from .common import BaseGrader, GraderContext
from .registry import (
    build_grader,
    grader_types,
    load_grader,
    named_graders,
    register_grader_type,
    register_named_grader,
)
from .template import TemplateError, sample_view

__all__ = [
    "BaseGrader",
    "CachedGrader",
    "Grade",
    "Grader",
    "GraderContext",
    "TemplateError",
    "build_grader",
    "cached",
    "grader_types",
    "load_grader",
    "named_graders",
    "register_grader_type",
    "register_named_grader",
    "sample_view",
]
