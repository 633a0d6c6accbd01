"""Executors: where a run's searches, grading and value training run (base.py: the seam and the
local executor; ray_cluster.py: a Ray cluster)."""

from .base import Executor, GradeRow, LocalExecutor, Scoring, SearchJob, store_result

__all__ = ["Executor", "GradeRow", "LocalExecutor", "Scoring", "SearchJob", "store_result"]
