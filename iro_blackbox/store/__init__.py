"""The SQL store, and the only code that speaks SQL: the database (db.py), its tables (schema.py)
and migrations, the request and grade caches (cache.py), the run repository (runs.py) and the job
queue (jobs.py)."""

from .cache import GradeCacheStore, RequestCacheStore
from .db import Store, default_home, open_store, resolve_db_url
from .jobs import FINAL, STATUSES, Claim, Heartbeat, JobQueue, age, new_worker_id
from .migrations import SCHEMA_VERSION
from .probes import ProbeStore
from .runs import CandidateLike, ExampleRef, RunRepository
from .schema import (
    Example,
    Generation,
    GradeCache,
    Iteration,
    Job,
    JobLog,
    Probe,
    RequestCache,
    Rollout,
    Run,
    ValueModelRecord,
)

__all__ = [
    "FINAL",
    "SCHEMA_VERSION",
    "STATUSES",
    "CandidateLike",
    "Claim",
    "Example",
    "ExampleRef",
    "Generation",
    "GradeCache",
    "GradeCacheStore",
    "Heartbeat",
    "Iteration",
    "Job",
    "JobLog",
    "JobQueue",
    "Probe",
    "ProbeStore",
    "RequestCache",
    "RequestCacheStore",
    "Rollout",
    "Run",
    "RunRepository",
    "Store",
    "ValueModelRecord",
    "age",
    "default_home",
    "new_worker_id",
    "open_store",
    "resolve_db_url",
]
