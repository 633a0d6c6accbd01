"""The SQL store: runs, examples, iterations, rollouts, grades, request cache, value models, jobs."""

from .cache import GradeCacheStore, RequestCacheStore
from .db import SCHEMA_VERSION, Store, default_home, open_store, resolve_db_url
from .schema import (
    Example,
    GradeCache,
    Iteration,
    Job,
    JobLog,
    RequestCache,
    Rollout,
    Run,
    ValueModelRecord,
)

__all__ = [
    "SCHEMA_VERSION",
    "Example",
    "GradeCache",
    "GradeCacheStore",
    "Iteration",
    "Job",
    "JobLog",
    "RequestCache",
    "RequestCacheStore",
    "Rollout",
    "Run",
    "Store",
    "ValueModelRecord",
    "default_home",
    "open_store",
    "resolve_db_url",
]
