"""`iro-bb jobs ...` and `iro-bb worker`: queue long runs in the store; workers run them.

iro-bb jobs submit align data.jsonl --iterations 2      # prints the job id at once
iro-bb jobs submit generate --run RUN prompts.jsonl -o out.jsonl
iro-bb worker --concurrency 1                            # on any machine sharing the store
iro-bb jobs list | show ID | logs ID | cancel ID | retry ID
"""

from __future__ import annotations

import inspect
import json
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import InputError
from ..jobs import Worker, cancel_job, get_job, job_logs, list_jobs, retry_job, submit
from ..providers.budget import spent_line
from ..store import FINAL, RunRepository, age, open_store
from .align_options import split_options, with_align_options
from .common import (
    DbOption,
    FinalOption,
    KOption,
    LOption,
    MaxCostOption,
    MaxOutputTokensOption,
    MaxRequestsOption,
    MaxTokensOption,
    OutputOption,
    PromptsArg,
    RunOption,
    SeedOption,
    WOption,
    budget_of,
    console,
    err_console,
)

app = typer.Typer(
    help="Queue alignment and generation runs as jobs in the store; `iro-bb worker` runs them.",
    no_args_is_help=True,
)
submit_app = typer.Typer(
    help="Queue a job and print its id (returns at once).", no_args_is_help=True
)
app.add_typer(submit_app, name="submit")

JobId = Annotated[int, typer.Argument(help="Job id (from `iro-bb jobs list`).", show_default=False)]


# -- submit -------------------------------------------------------------------------------------
_SUBMIT_EXTRA = [
    inspect.Parameter("db", inspect.Parameter.KEYWORD_ONLY, annotation=DbOption, default=None),
]


def _queued(job_id: int, what: str) -> None:
    console.print(str(job_id), highlight=False)  # stdout: the id alone, for scripts
    err_console.print(
        f"queued {escape(what)} as job {job_id}; `iro-bb worker` runs it, "
        f"`iro-bb jobs show {job_id}` follows it",
        highlight=False,
    )


@with_align_options(_SUBMIT_EXTRA)
def submit_align(**kwargs: Any) -> None:
    """Queue an alignment run (the same options as `iro-bb align`); print the job id.

    The options are checked now; the run's name is fixed now, so a job whose worker dies
    resumes the same run on another worker.
    """

    db = kwargs.pop("db")
    data, resume, opts = split_options(kwargs)
    if data is None and resume is None:
        raise InputError("jobs submit align: give a DATA.jsonl file (or --resume RUN)")
    args: dict[str, Any] = {"options": opts}
    if resume:
        args["resume"] = resume
    else:
        args["data"] = data
    job_id = submit("align", args, db=db)
    _queued(job_id, f"align {data or resume}")


submit_app.command("align")(submit_align)


@submit_app.command("generate")
def submit_generate(
    prompts: PromptsArg,
    run: RunOption,
    output: OutputOption,
    max_tokens: MaxTokensOption = None,
    w: WOption = None,
    k: KOption = None,
    l: LOption = None,
    seed: SeedOption = None,
    final: FinalOption = "score",
    db: DbOption = None,
    max_cost: MaxCostOption = None,
    max_requests: MaxRequestsOption = None,
    max_output_tokens: MaxOutputTokensOption = None,
) -> None:
    """Queue decoding of a prompts file with an aligned run; print the job id. The limits cover
    the job's every attempt together (a resumed job counts what the earlier ones spent)."""
    budget = budget_of(max_cost, max_requests, max_output_tokens)  # a bad limit: one line
    store = open_store(db)
    RunRepository(store).find(run)  # a clear error now for an unknown run
    search = {"max_tokens": max_tokens, "w": w, "k": k, "l": l, "seed": seed}
    args = {
        "run": run,
        "input": str(prompts),
        "output": str(output),
        "search": {k_: v for k_, v in search.items() if v is not None},
        "final": final,
    }
    if budget.active:
        args["budget"] = {
            "max_cost_usd": budget.max_cost_usd,
            "max_requests": budget.max_requests,
            "max_output_tokens": budget.max_output_tokens,
        }
    job_id = submit("generate", args, db=store)
    _queued(job_id, f"generate {prompts} with {run}")


# -- reading ------------------------------------------------------------------------------------
def _ts(dt: datetime | None) -> str:
    return "" if dt is None else dt.strftime("%Y-%m-%d %H:%M:%S")


def _ago(dt: datetime | None) -> str:
    s = age(dt)
    if s is None:
        return ""
    if s < 90:
        return f"{s:.0f}s ago"
    if s < 5400:
        return f"{s / 60:.0f}m ago"
    return f"{s / 3600:.1f}h ago"


_STATUS_STYLE = {
    "queued": "yellow",
    "running": "cyan",
    "done": "green",
    "failed": "red",
    "cancelled": "magenta",
}


def _status(job: dict[str, Any]) -> str:
    st = job["status"]
    text = f"[{_STATUS_STYLE.get(st, 'white')}]{st}[/]"
    if job["cancel_requested"] and st == "running":
        text += " (cancelling)"
    return text


def _num(v: Any, fmt: str = "{:,}") -> str:
    if v is None or v == "":
        return ""
    try:
        return fmt.format(v)
    except (ValueError, TypeError):
        return str(v)


def _what(job: dict[str, Any]) -> str:
    a = job["args"] or {}
    if job["kind"] == "align":
        src = Path(a["data"]).name if a.get("data") else f"resume {a.get('resume')}"
        run = (a.get("options") or {}).get("run_name")
        return f"{src} -> {run}" if run else src
    if job["kind"] == "generate":
        return (
            f"{a.get('run')}: {Path(a.get('input', '')).name} -> {Path(a.get('output', '')).name}"
        )
    return json.dumps(a)[:60]


@app.command("list")
def list_cmd(
    status: Annotated[
        str | None,
        typer.Option(help="Only jobs with this status: queued, running, done, failed, cancelled."),
    ] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many (newest first).")] = 50,
    db: DbOption = None,
) -> None:
    """Jobs, newest first: status, progress, stage, tokens, requests, cost, errors."""
    rows = list_jobs(db, status=status, limit=limit)
    t = Table(title="jobs")
    cols = (
        ("id", "right", None),
        ("kind", "left", None),
        ("what", "left", 12),
        ("status", "left", 9),
        ("progress", "right", 7),
        ("stage", "left", 8),
        ("tokens", "right", None),
        ("requests", "right", None),
        ("cost $", "right", None),
        ("tries", "right", None),
        ("updated", "left", None),
        ("error", "left", 10),
    )
    for col, just, min_width in cols:
        t.add_column(col, justify=just, min_width=min_width, overflow="fold")
    for j in rows:
        p = j["progress"] or {}
        prog = f"{p['done']}/{p['total']}" if p.get("total") else ""
        t.add_row(
            str(j["id"]),
            j["kind"],
            escape(_what(j)),
            _status(j),
            prog,
            escape(str(p.get("stage") or "")),
            _num(p.get("tokens")),
            _num(p.get("requests")),
            _num(p.get("cost_usd"), "{:.4f}") if p.get("cost_usd") else "",
            str(j["attempts"]),
            _ago(j["heartbeat_at"] or j["finished_at"] or j["created_at"]),
            escape((j["error"] or "")[:120]),
        )
    console.print(t)
    if not rows:
        console.print("no jobs: queue one with `iro-bb jobs submit align DATA.jsonl`")


@app.command("show")
def show_cmd(job_id: JobId, db: DbOption = None) -> None:
    """One job: arguments, status, progress, result, error and its latest log lines."""
    j = get_job(job_id, db)
    p = dict(j["progress"] or {})
    result = p.pop("result", None)
    t = Table(title=f"job {j['id']} ({j['kind']})", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    t.add_row("status", _status(j))
    if p.get("total"):
        pct = 100.0 * p.get("done", 0) / max(p["total"], 1)
        t.add_row("progress", f"{p.get('done', 0)}/{p['total']} ({pct:.0f}%)")
    for key, label, fmt in (
        ("stage", "stage", "{}"),
        ("tokens", "tokens", "{:,}"),
        ("requests", "requests", "{:,}"),
        ("cache_hits", "cache hits", "{:,}"),
        ("cost_usd", "cost $", "{:.4f}"),
        ("reward", "reward (stage mean)", "{:+.3f}"),
        ("elapsed_s", "elapsed in attempt (s)", "{:.0f}"),
    ):
        if p.get(key) is not None and p.get(key) != "":
            t.add_row(label, escape(_num(p[key], fmt)))
    if p.get("spent"):
        t.add_row("spent (all attempts)", escape(spent_line(p["spent"])))
    t.add_row("what", escape(_what(j)))
    t.add_row("args", escape(json.dumps(j["args"], indent=1)))
    t.add_row("attempts", str(j["attempts"]))
    t.add_row("worker", escape(j["worker"] or ""))
    t.add_row("created", _ts(j["created_at"]))
    t.add_row("started", _ts(j["started_at"]))
    t.add_row("heartbeat", f"{_ts(j['heartbeat_at'])} {_ago(j['heartbeat_at'])}".strip())
    t.add_row("finished", _ts(j["finished_at"]))
    if result is not None:
        t.add_row("result", escape(json.dumps(result, indent=1)))
    if j["error"]:
        t.add_row("error", f"[red]{escape(j['error'])}[/red]")
    console.print(t)
    logs = [r for r in job_logs(job_id, db, tail=10) if r["level"] != "debug"]
    for r in logs:
        console.print(f"{_ts(r['at'])} {r['level']:<7} {escape(r['message'])}", highlight=False)
    if j["error"]:
        console.print(f"details: `iro-bb jobs logs {job_id}`")


@app.command("logs")
def logs_cmd(
    job_id: JobId,
    tail: Annotated[int | None, typer.Option(help="Only the last N lines.")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until the job ends.")
    ] = False,
    db: DbOption = None,
) -> None:
    """A job's log: claims, resumes, cancels, errors (with tracebacks)."""
    seen = 0
    while True:
        rows = job_logs(job_id, db, tail=None if follow or tail is None else tail)
        if not follow and tail:
            rows = rows[-tail:]
        for r in rows[seen:]:
            console.print(f"{_ts(r['at'])} {r['level']:<7} {escape(r['message'])}", highlight=False)
        seen = len(rows)
        if not follow or get_job(job_id, db)["status"] in FINAL:
            return
        time.sleep(1.0)


@app.command("cancel")
def cancel_cmd(job_id: JobId, db: DbOption = None) -> None:
    """Cancel a job: a queued one at once, a running one at its next safe point."""
    st = cancel_job(job_id, db)
    if st == "running":
        console.print(f"job {job_id}: cancel requested; it stops at its next safe point")
    else:
        console.print(f"job {job_id}: {st}")


@app.command("retry")
def retry_cmd(job_id: JobId, db: DbOption = None) -> None:
    """Queue a failed or cancelled job again; it resumes from the store and the request cache."""
    retry_job(job_id, db)
    console.print(f"job {job_id}: queued again")


# -- worker -------------------------------------------------------------------------------------
def worker_cmd(
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", help="Jobs run at once by this worker.")
    ] = 1,
    poll: Annotated[
        float, typer.Option(help="Seconds between looks at the queue when it is empty.")
    ] = 2.0,
    stale_after: Annotated[
        float,
        typer.Option(
            help="Seconds without a heartbeat after which a running job's worker is presumed dead "
            "and the job is claimed again (it resumes)."
        ),
    ] = 60.0,
    once: Annotated[
        bool, typer.Option("--once", help="Run one job (if any is queued), then exit.")
    ] = False,
    exit_when_idle: Annotated[
        bool,
        typer.Option(
            "--exit-when-idle",
            help="Exit once no job is queued or running. A job another worker is running is "
            "waited for: if that worker dies, its job goes --stale-after seconds without a "
            "heartbeat and this worker takes it over.",
        ),
    ] = False,
    kind: Annotated[
        list[str] | None,
        typer.Option("--kind", help="Only run jobs of this kind (repeatable): align, generate."),
    ] = None,
    max_attempts: Annotated[
        int,
        typer.Option(help="Give up on a job (failed) after its worker died this many times."),
    ] = 5,
    db: DbOption = None,
) -> None:
    """Run queued jobs from the store. Several workers may share one database.

    Ctrl-C (or SIGTERM) stops at the next safe point and puts running jobs back in the queue;
    a second Ctrl-C exits at once (the jobs are re-claimed after --stale-after seconds).
    """

    def on_event(job_id: int, event: str, message: str) -> None:
        style = {"failed": "red", "done": "green", "cancelled": "magenta", "waiting": "dim"}.get(
            event, "cyan"
        )
        err_console.print(
            f"{datetime.now():%H:%M:%S} job {job_id}: [{style}]{escape(message)}[/]",
            highlight=False,
        )

    worker = Worker(
        db,
        concurrency=concurrency,
        poll=poll,
        stale_after=stale_after,
        once=once,
        exit_when_idle=exit_when_idle,
        kinds=kind or None,
        max_attempts=max_attempts,
        on_event=on_event,
    )
    err_console.print(
        f"worker {worker.id} on {worker.store.display_url}: concurrency {concurrency}, "
        f"kinds {', '.join(worker.kinds)}",
        highlight=False,
    )
    interrupts = 0

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            raise KeyboardInterrupt
        err_console.print("stopping: running jobs stop at their next safe point and are requeued")
        worker.stop()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        stats = worker.run()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    err_console.print(
        f"worker done: {stats.done} done, {stats.failed} failed, {stats.cancelled} cancelled, "
        f"{stats.released} requeued",
        highlight=False,
    )
