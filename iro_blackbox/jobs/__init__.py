"""Async batch jobs in the store: submit, worker, cancel, progress, logs.

from iro_blackbox.jobs import submit, Worker
job_id = submit("align", {"data": "data.jsonl", "options": {"iterations": 2}}, db="iro.db")
Worker("iro.db", concurrency=1, exit_when_idle=True).run()

The queue itself (claims, heartbeats, fencing) is store/jobs.py; job kinds are registered in
iro_blackbox.registry.JOB_KINDS (kinds.py holds the built-in ones).
"""

from .api import cancel_job, get_job, job_logs, list_jobs, retry_job, submit
from .context import JobContext
from .kinds import ALIGN, GENERATE, JobKind, prepare_args
from .worker import Worker, WorkerStats

__all__ = [
    "ALIGN",
    "GENERATE",
    "JobContext",
    "JobKind",
    "Worker",
    "WorkerStats",
    "cancel_job",
    "get_job",
    "job_logs",
    "list_jobs",
    "prepare_args",
    "retry_job",
    "submit",
]
