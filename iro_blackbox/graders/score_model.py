"""`score_model`: an LLM judge (`model` + `provider`) or a local reward model (`reward_model`)."""

from __future__ import annotations

from typing import Any

from .base import Grader
from .common import GraderContext
from .judge import JudgeGrader
from .reward_model import RewardModelGrader


def score_model_from_spec(spec: dict[str, Any], ctx: GraderContext) -> Grader:
    if "reward_model" in spec:
        return RewardModelGrader.from_spec(spec, ctx)
    return JudgeGrader.from_spec(spec, ctx)
