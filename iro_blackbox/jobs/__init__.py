"""Async batch jobs in the store: submit, worker, cancel, progress, logs (and the Batch API path).

from iro_blackbox.jobs import submit, Worker
job_id = submit("align", {"data": "data.jsonl", "options": {"iterations": 2}}, db="iro.db")
Worker("iro.db", concurrency=1, exit_when_idle=True).run()
"""

from .context import JobContext
from .queue import (
    Claim,
    JobQueue,
    cancel_job,
    get_job,
    job_logs,
    list_jobs,
    retry_job,
    submit,
)
from .runners import JobKind, get_kind, kind_names, register_kind
from .worker import Worker, WorkerStats

__all__ = [
    "Claim",
    "JobContext",
    "JobKind",
    "JobQueue",
    "Worker",
    "WorkerStats",
    "cancel_job",
    "get_job",
    "get_kind",
    "job_logs",
    "kind_names",
    "list_jobs",
    "register_kind",
    "retry_job",
    "submit",
]
