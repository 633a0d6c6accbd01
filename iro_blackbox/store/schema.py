"""SQLAlchemy ORM tables of the store. Every rollout, grade and API response is kept here."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Meta(Base):
    """Key/value facts about the database itself: app name, schema version."""

    __tablename__ = "iro_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Migration(Base):
    """Numbered migrations applied to this database."""

    __tablename__ = "iro_migrations"
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    applied_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, index=True)
    status: Mapped[str] = mapped_column(
        String(32), default="created"
    )  # created|running|done|failed
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    provider_info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    out_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # what the run has paid its provider so far, over every attempt (budgets count it):
    # {"cost_usd", "requests", "input_tokens", "output_tokens"}
    spent: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class Example(Base):
    """One prompt of a run's dataset, with the split it belongs to."""

    __tablename__ = "examples"
    __table_args__ = (UniqueConstraint("run_id", "ex_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    ex_id: Mapped[str] = mapped_column(String(200))
    split: Mapped[str] = mapped_column(String(16))  # train | eval
    data: Mapped[dict[str, Any]] = mapped_column(JSON)  # the full JSONL record


class Iteration(Base):
    __tablename__ = "iterations"
    __table_args__ = (UniqueConstraint("run_id", "t"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    t: Mapped[int] = mapped_column(Integer)  # 0 = base policy evaluation
    stage: Mapped[str] = mapped_column(String(32), default="pending")  # last finished stage
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Rollout(Base):
    """One candidate response of a search the IRO loop ran. `method` is the search that made it
    (sample | best_of_n | cbs), `search` which of several searches of the same (t, phase, method)
    for this example (guided rollouts run several), `idx` the candidate within that search.
    `selected` marks the ones kept by the reweight step / the search's answer."""

    __tablename__ = "rollouts"
    __table_args__ = (
        UniqueConstraint("run_id", "t", "phase", "method", "example_id", "search", "idx"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    t: Mapped[int] = mapped_column(Integer)  # iteration whose policy produced it (pi_t)
    phase: Mapped[str] = mapped_column(String(16))  # train | eval
    method: Mapped[str] = mapped_column(String(32))  # the search: sample | best_of_n | cbs
    example_id: Mapped[int] = mapped_column(ForeignKey("examples.id", ondelete="CASCADE"))
    search: Mapped[int] = mapped_column(Integer, default=0)  # which search of (t, phase, method)
    idx: Mapped[int] = mapped_column(Integer)  # candidate index within that search
    prompt: Mapped[str] = mapped_column(Text)
    response: Mapped[str] = mapped_column(Text)
    reward: Mapped[float | None] = mapped_column(Float, nullable=True)
    grade_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)  # value-model score S
    selected: Mapped[bool] = mapped_column(Boolean, default=False)
    weight: Mapped[float | None] = mapped_column(Float, nullable=True)
    finish_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    # on the search's answer: what the whole search for this prompt cost (every chunk generated)
    usage: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Generation(Base):
    """An answer `iro-bb generate` (or `generate_file`) made with a run's aligned policy for one
    line of a prompts file. `batch` keys one invocation's settings (file, search options, final
    pick, and the other model it steered, if any), so re-running it resumes and another setting
    starts afresh."""

    __tablename__ = "generations"
    __table_args__ = (UniqueConstraint("run_id", "batch", "ex_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    batch: Mapped[str] = mapped_column(String(64))
    ex_id: Mapped[str] = mapped_column(String(200))  # the prompt's id in its file
    data: Mapped[dict[str, Any]] = mapped_column(JSON)  # the prompt's JSONL record
    response: Mapped[str] = mapped_column(Text)
    finish_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    reward: Mapped[float | None] = mapped_column(Float, nullable=True)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    usage: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the search's cost, chunks
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class RequestCache(Base):
    """Every provider response, keyed by the hash of everything that changes the answer."""

    __tablename__ = "request_cache"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)  # canonical request (never secrets)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Probe(Base):
    """What an endpoint was found to do (continuation modes, n, seed, ...) for one model, reused
    instead of probing again."""

    __tablename__ = "probes"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # hash(base URL, model, ...)
    base_url: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(Text)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class GradeCache(Base):
    """Grades keyed by (grader hash, example, text)."""

    __tablename__ = "grade_cache"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    grader_hash: Mapped[str] = mapped_column(String(64), index=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ValueModelRecord(Base):
    """Registry of trained value models."""

    __tablename__ = "value_models"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), nullable=True, index=True
    )
    t: Mapped[int | None] = mapped_column(Integer, nullable=True)
    path: Mapped[str] = mapped_column(Text)
    backbone: Mapped[str] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # align | generate
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    # queued | running | done | failed | cancelled
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class JobLog(Base):
    __tablename__ = "job_logs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    level: Mapped[str] = mapped_column(String(16), default="info")
    message: Mapped[str] = mapped_column(Text)
