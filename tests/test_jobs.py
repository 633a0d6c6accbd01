"""Job queue and worker on a real SQLite file: atomic claims, heartbeats, stale re-claims, cancel,
progress, errors, logs, and the `iro-bb jobs` / `iro-bb worker` commands."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from _fx_jobs import read_record, wait_for

from iro_blackbox.cli.app import main
from iro_blackbox.errors import InputError
from iro_blackbox.jobs import Worker, get_job, job_logs, list_jobs, submit
from iro_blackbox.store import JobQueue, open_store


def probe(db, record, steps=3, sleep=0.0, **kw):
    return submit("probe", {"record": str(record), "steps": steps, "sleep": sleep, **kw}, db=db)


def test_submit_claim_finish(jobs_db, probe_record):
    q = JobQueue(open_store(jobs_db))
    jid = probe(jobs_db, probe_record)
    assert get_job(jid, jobs_db)["status"] == "queued"
    c = q.claim("w1")
    assert c is not None and c.id == jid and c.attempt == 1 and c.kind == "probe"
    assert q.claim("w2") is None  # nothing else runnable
    j = get_job(jid, jobs_db)
    assert j["status"] == "running" and j["worker"] == "w1" and j["heartbeat_at"] is not None
    assert not q.finish(jid, "w2", "done")  # fenced: only the owner may finish it
    assert q.finish(jid, "w1", "done", progress={"done": 3, "total": 3})
    j = get_job(jid, jobs_db)
    assert j["status"] == "done" and j["finished_at"] is not None and j["progress"]["done"] == 3
    assert [r["message"] for r in job_logs(jid, jobs_db)][:2] == [
        "submitted probe job",
        "claimed by w1 (attempt 1)",
    ]


def test_claims_from_many_threads_never_overlap(jobs_db, probe_record):
    """8 threads, each with its own engine on the same file, race for 40 jobs. Each thread
    holds its first job until every thread holds one, so all 8 claim while others do, however
    the machine schedules them (no timing decides whether the race had several winners)."""
    ids = [probe(jobs_db, probe_record) for _ in range(40)]
    won: dict[int, list[str]] = {}
    lock = threading.Lock()
    all_hold_one = threading.Barrier(8)

    def racer(name: str) -> None:
        q = JobQueue(open_store(jobs_db))
        first = True
        while True:
            c = q.claim(name)
            if c is None:
                return
            with lock:
                won.setdefault(c.id, []).append(name)
            if first:
                all_hold_one.wait(timeout=120)
                first = False
            q.finish(c.id, name, "done")

    threads = [threading.Thread(target=racer, args=(f"t{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(won) == ids
    assert all(len(v) == 1 for v in won.values()), {k: v for k, v in won.items() if len(v) > 1}
    assert len({v[0] for v in won.values()}) == 8  # every thread won a job
    assert {j["status"] for j in list_jobs(jobs_db, limit=100)} == {"done"}


def heartbeat_ago(db: str, job_id: int, seconds: float) -> None:
    """Set a running job's last heartbeat `seconds` in the past (a worker that went silent then),
    instead of waiting for it to go stale."""
    from datetime import timedelta

    from sqlalchemy import update

    from iro_blackbox.store.schema import Job, utcnow

    st = open_store(db)
    try:
        with st.session() as s:
            s.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(heartbeat_at=utcnow() - timedelta(seconds=seconds))
            )
    finally:
        st.close()


DAY = 86400.0  # a heartbeat written during the test is never this old


def test_stale_job_is_reclaimed_and_old_owner_fenced(jobs_db, probe_record):
    q = JobQueue(open_store(jobs_db))
    jid = probe(jobs_db, probe_record)
    assert q.claim("dead", stale_after=60).id == jid
    assert q.claim("live", stale_after=DAY) is None  # heartbeat still fresh
    heartbeat_ago(jobs_db, jid, 120)  # "dead" stopped heartbeating two minutes ago
    assert q.claim("live", stale_after=DAY) is None  # not stale by a day's measure
    c = q.claim("live", stale_after=60)
    assert c is not None and c.id == jid and c.attempt == 2
    hb = q.heartbeat(jid, "dead")
    assert not hb.owned  # the presumed-dead worker learns it lost the job ...
    assert not q.finish(jid, "dead", "failed", error="x")  # ... and cannot overwrite it
    assert q.heartbeat(jid, "live").owned
    assert any("stopped heartbeating" in r["message"] for r in job_logs(jid, jobs_db))


def test_job_whose_workers_keep_dying_fails(jobs_db, probe_record):
    q = JobQueue(open_store(jobs_db))
    jid = probe(jobs_db, probe_record)
    for i in range(2):
        assert q.claim(f"w{i}", stale_after=60, max_attempts=2) is not None
        heartbeat_ago(jobs_db, jid, 120)  # that worker died
    assert q.claim("w9", stale_after=60, max_attempts=2) is None
    j = get_job(jid, jobs_db)
    assert j["status"] == "failed" and "worker died 2 times" in j["error"]
    q.retry(jid)
    assert get_job(jid, jobs_db)["status"] == "queued"


def test_worker_runs_jobs_with_progress_and_result(jobs_db, probe_record):
    ids = [probe(jobs_db, probe_record, steps=4) for _ in range(3)]
    stats = Worker(jobs_db, concurrency=2, poll=0.05, exit_when_idle=True).run()
    assert stats.done == 3 and sorted(stats.job_ids) == ids
    rec = read_record(probe_record)
    assert sorted((j, s) for j, s, _ in rec) == sorted((j, s) for j in ids for s in range(4))
    for jid in ids:
        j = get_job(jid, jobs_db)
        assert j["status"] == "done"
        assert j["progress"]["done"] == 4 and j["progress"]["total"] == 4
        assert j["progress"]["result"] == {"steps": 4}


def test_failure_is_one_line_with_details_in_logs(jobs_db, probe_record):
    jid = probe(jobs_db, probe_record, fail="disk on fire\nsecond line")
    stats = Worker(jobs_db, poll=0.05, once=True).run()
    assert stats.failed == 1
    j = get_job(jid, jobs_db)
    assert j["status"] == "failed" and j["error"] == "RuntimeError: disk on fire"
    logs = job_logs(jid, jobs_db)
    assert any(r["level"] == "error" and "disk on fire" in r["message"] for r in logs)
    assert any(r["level"] == "debug" and "Traceback" in r["message"] for r in logs)


def test_cancel_queued_and_running(jobs_db, probe_record):
    queued = probe(jobs_db, probe_record)
    q = JobQueue(open_store(jobs_db))
    assert q.cancel(queued) == "cancelled"
    running = probe(jobs_db, probe_record, steps=200, sleep=0.05)
    w = Worker(jobs_db, poll=0.05, stale_after=3, exit_when_idle=True)
    t = threading.Thread(target=w.run)
    t.start()
    wait_for(lambda: len(read_record(probe_record)) >= 3, 30, "the job to start")
    assert q.cancel(running) == "running"  # stops at the next safe point
    t.join(timeout=30)
    assert not t.is_alive()
    j = get_job(running, jobs_db)
    assert j["status"] == "cancelled" and j["cancel_requested"]
    assert len(read_record(probe_record)) < 200
    assert w.stats.cancelled == 1
    assert get_job(queued, jobs_db)["status"] == "cancelled"  # never ran
    assert all(jid == running for jid, _, _ in read_record(probe_record))


def test_worker_stop_requeues_and_next_worker_resumes(jobs_db, probe_record):
    jid = probe(jobs_db, probe_record, steps=30, sleep=0.03)
    w1 = Worker(jobs_db, poll=0.05, exit_when_idle=True)
    t = threading.Thread(target=w1.run)
    t.start()
    wait_for(lambda: len(read_record(probe_record)) >= 5, 30, "some steps")
    w1.stop()
    t.join(timeout=30)
    assert w1.stats.released == 1
    j = get_job(jid, jobs_db)
    assert j["status"] == "queued" and j["worker"] is None
    Worker(jobs_db, poll=0.05, exit_when_idle=True).run()
    assert get_job(jid, jobs_db)["status"] == "done"
    steps = [s for _, s, _ in read_record(probe_record)]
    assert sorted(steps) == list(range(30))  # every step exactly once across both workers


def test_progress_writes_are_throttled(jobs_db, probe_record):
    from iro_blackbox.jobs.context import JobContext

    store = open_store(jobs_db)
    q = JobQueue(store)
    jid = probe(jobs_db, probe_record)
    c = q.claim("w")
    writes = []
    real = q.heartbeat

    def counting(*a, **kw):
        writes.append(kw.get("progress"))
        return real(*a, **kw)

    q.heartbeat = counting  # type: ignore[method-assign]
    ctx = JobContext(c.id, c.kind, c.args, store, "w", 1, q)
    for i in range(500):
        ctx.on_progress({"stage": "a", "done": i, "total": 500})
    assert 1 <= len(writes) <= 3  # the stage change, then at most one a second
    ctx.on_progress({"stage": "b", "done": 0})  # a new stage is written at once
    assert writes[-1]["stage"] == "b"
    ctx.on_progress({"done": 7})
    ctx.flush_progress()
    assert get_job(jid, jobs_db)["progress"]["done"] == 7


def test_secrets_and_bad_kinds_are_refused(jobs_db, probe_record):
    with pytest.raises(InputError, match="api_key"):
        submit("align", {"data": "x.jsonl", "options": {"api_key": "sk-secret"}}, db=jobs_db)
    with pytest.raises(InputError, match="unknown job kind 'nope'"):
        submit("nope", {}, db=jobs_db)
    assert list_jobs(jobs_db) == []


# -- the CLI ----------------------------------------------------------------------------------------
def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def data_file(tmp_path) -> Path:
    p = tmp_path / "upbeat.jsonl"
    p.write_text(
        "".join(json.dumps({"prompt": f"Say something about day {i}."}) + "\n" for i in range(6))
    )
    return p


def test_cli_submit_align_validates_and_prints_id(jobs_db, data_file, capsys, tmp_path):
    code, out, err = run_cli(
        capsys, "jobs", "submit", "align", str(data_file), "--w", "2", "--k", "2", "--db", jobs_db
    )
    assert code == 0, err
    jid = int(out.strip())
    j = get_job(jid, jobs_db)
    assert j["kind"] == "align" and j["status"] == "queued"
    assert j["args"]["data"] == str(data_file.resolve())
    opts = j["args"]["options"]
    assert opts["w"] == 2 and opts["k"] == 2 and opts["run_name"].startswith("upbeat-")
    # the run name is the one `iro-bb align` would use, so resuming either way continues it
    from iro_blackbox.iro.config import AlignConfig

    assert (
        opts["run_name"]
        == AlignConfig.from_dict(
            {**opts, "run_name": None, "data": str(data_file)}
        ).default_run_name()
    )

    for argv, needle in [
        (["jobs", "submit", "align", str(tmp_path / "missing.jsonl")], "does not exist"),
        (["jobs", "submit", "align", str(data_file), "--w", "0"], "w must be an integer >= 1"),
        (["jobs", "submit", "align", str(data_file), "--provider", "nope"], "provider"),
        (
            [
                "jobs",
                "submit",
                "generate",
                str(data_file),
                "--run",
                "nope",
                "-o",
                str(tmp_path / "o.jsonl"),
            ],
            "no run named 'nope'",
        ),
        (["jobs", "show", "999"], "no job 999"),
        (["jobs", "cancel", "999"], "no job 999"),
        (["jobs", "list", "--status", "weird"], "status must be one of"),
    ]:
        code, out, err = run_cli(capsys, *argv, "--db", jobs_db)
        assert code != 0, argv
        assert needle in err, (argv, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 2, err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"nope": 1}\n')
    code, _, err = run_cli(capsys, "jobs", "submit", "align", str(bad), "--db", jobs_db)
    assert code == 2 and "bad.jsonl:2" in err
    assert len(list_jobs(jobs_db)) == 1  # nothing queued by the failures


def test_cli_list_show_logs_cancel_retry(jobs_db, probe_record, capsys, monkeypatch):
    from iro_blackbox.cli.common import console

    monkeypatch.setattr(console, "width", 200)  # a wide terminal: the table has 12 columns
    jid = probe(jobs_db, probe_record, steps=2)
    other = probe(jobs_db, probe_record, fail="broken thing")
    Worker(jobs_db, poll=0.05, exit_when_idle=True).run()
    queued = probe(jobs_db, probe_record)
    code, out, _ = run_cli(capsys, "jobs", "list", "--db", jobs_db)
    assert code == 0
    for needle in ("done", "failed", "queued", "2/2", "probing", "broken thing"):
        assert needle in out, needle
    code, out, _ = run_cli(capsys, "jobs", "show", str(jid), "--db", jobs_db)
    assert code == 0 and "done" in out and '"steps": 2' in out and "2/2 (100%)" in out
    code, out, _ = run_cli(capsys, "jobs", "logs", str(other), "--db", jobs_db)
    assert code == 0 and "failed: RuntimeError: broken thing" in out and "Traceback" in out
    code, out, _ = run_cli(capsys, "jobs", "cancel", str(queued), "--db", jobs_db)
    assert code == 0 and "cancelled" in out
    code, out, _ = run_cli(capsys, "jobs", "retry", str(queued), "--db", jobs_db)
    assert code == 0 and get_job(queued, jobs_db)["status"] == "queued"
    code, _, err = run_cli(capsys, "jobs", "retry", str(jid), "--db", jobs_db)
    assert code == 2 and "only failed or cancelled jobs" in err


def test_cli_worker_once(jobs_db, probe_record, capsys):
    jid = probe(jobs_db, probe_record, steps=2)
    second = probe(jobs_db, probe_record, steps=2)
    code, _, err = run_cli(capsys, "worker", "--once", "--poll", "0.05", "--db", jobs_db)
    assert code == 0 and f"job {jid}: " in err and "1 done" in err
    assert get_job(jid, jobs_db)["status"] == "done"
    assert get_job(second, jobs_db)["status"] == "queued"  # --once ran one job only
    code, _, err = run_cli(capsys, "worker", "--concurrency", "0", "--db", jobs_db)
    assert code == 2 and "concurrency must be >= 1" in err


def test_worker_that_lost_its_job_stops_and_leaves_the_row_alone(jobs_db, probe_record):
    from sqlalchemy import update

    from iro_blackbox.store import Job

    jid = probe(jobs_db, probe_record, steps=500, sleep=0.02)
    # once: exit_when_idle would rightly wait for the usurper's job, which still looks alive
    w = Worker(jobs_db, poll=0.05, heartbeat_every=0.1, once=True)
    t = threading.Thread(target=w.run)
    t.start()
    wait_for(lambda: len(read_record(probe_record)) >= 3, 30, "the job to start")
    with open_store(jobs_db).session() as s:  # another worker took it over (we looked dead)
        s.execute(update(Job).where(Job.id == jid).values(worker="usurper"))
    t.join(timeout=30)
    assert not t.is_alive() and w.stats.lost == 1
    j = get_job(jid, jobs_db)
    assert j["status"] == "running" and j["worker"] == "usurper"  # untouched
    assert len(read_record(probe_record)) < 500


def test_cli_logs_follow_returns_when_the_job_ends(jobs_db, probe_record, capsys):
    jid = probe(jobs_db, probe_record, steps=1)
    Worker(jobs_db, poll=0.05, exit_when_idle=True).run()
    code, out, _ = run_cli(capsys, "jobs", "logs", str(jid), "--follow", "--db", jobs_db)
    assert code == 0 and out.rstrip().endswith("done")
    code, out, _ = run_cli(capsys, "jobs", "logs", str(jid), "--tail", "1", "--db", jobs_db)
    assert code == 0 and len(out.strip().splitlines()) == 1


def test_a_generate_jobs_budget_spans_its_attempts(jobs_db, probe_record, tmp_path):
    """Spending is written to the job at each request, so the attempt that resumes a dead
    worker's job starts from what the first one spent: the limit covers the job as a whole."""
    from iro_blackbox.errors import BudgetExceeded, ConfigError
    from iro_blackbox.jobs.context import JobContext, JobLedger
    from iro_blackbox.jobs.kinds import prepare_args
    from iro_blackbox.providers.budget import Budget, BudgetGuard
    from iro_blackbox.providers.openai.pricing import Prices

    store = open_store(jobs_db)
    q = JobQueue(store)
    jid = probe(jobs_db, probe_record)

    def attempt(worker: str, stale_after: float) -> JobContext:
        c = q.claim(worker, stale_after=stale_after)
        assert c is not None and c.id == jid
        return JobContext(c.id, c.kind, c.args, store, worker, c.attempt, q, dict(c.progress))

    prices = Prices(1.0, 1.0, "user")
    budget = Budget(max_requests=4)
    g1 = BudgetGuard(budget, JobLedger(attempt("w1", 60.0)), prices)
    for _ in range(3):
        g1.settle(g1.reserve(10, 5), 10, 5)
    # w1 dies here, before any progress flush of its own: w2 takes the job over
    ctx2 = attempt("w2", 0.0)
    assert ctx2.attempt == 2 and ctx2.progress["spent"]["requests"] == 3
    g2 = BudgetGuard(budget, JobLedger(ctx2), prices)
    g2.settle(g2.reserve(10, 5), 10, 5)
    with pytest.raises(BudgetExceeded, match="--max-requests 4"):
        g2.reserve(10, 5)
    assert get_job(jid, jobs_db)["progress"]["spent"]["requests"] == 4

    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "hi"}\n')
    base = {"run": "r", "input": str(prompts), "output": str(tmp_path / "o.jsonl")}
    args = prepare_args("generate", {**base, "budget": {"max_cost_usd": 0.5, "max_requests": None}})
    assert args["budget"] == {"max_cost_usd": 0.5}
    for bad, needle in (
        ({"max_cost_usd": -1}, "max_cost must be a number"),
        ({"max_dollars": 1}, "budget is an object of"),
    ):
        with pytest.raises((InputError, ConfigError), match=needle):
            prepare_args("generate", {**base, "budget": bad})


def waiting_worker(db: str, **kw) -> tuple[Worker, threading.Thread, list[tuple[int, str, str]]]:
    """A worker told to exit when idle, started in a thread; the events it reports."""
    events: list[tuple[int, str, str]] = []
    w = Worker(db, poll=0.05, exit_when_idle=True, on_event=lambda *e: events.append(e), **kw)
    t = threading.Thread(target=w.run)
    t.start()
    return w, t, events


def test_exit_when_idle_waits_for_a_live_looking_job_and_takes_it_over_once_stale(
    jobs_db, probe_record
):
    """Started while a (dead) worker's job still has a fresh heartbeat, it waits; once that
    heartbeat is older than stale_after, it takes the job over, finishes it, and only then exits."""
    q = JobQueue(open_store(jobs_db))
    jid = probe(jobs_db, probe_record, steps=3)
    assert q.claim("dead", stale_after=60).id == jid  # claimed, heartbeat now: looks alive
    w, t, events = waiting_worker(jobs_db, stale_after=60)
    try:
        wait_for(lambda: any(e[:2] == (jid, "waiting") for e in events), 30, "it to wait")
        assert t.is_alive() and w.stats.claimed == 0
        j = get_job(jid, jobs_db)
        assert j["status"] == "running" and j["worker"] == "dead"
        heartbeat_ago(jobs_db, jid, 120)  # "dead" stopped heartbeating two minutes ago
        t.join(timeout=60)
        assert not t.is_alive()
    finally:
        w.stop()
        t.join(timeout=60)
    j = get_job(jid, jobs_db)
    assert j["status"] == "done" and j["worker"] == w.id and j["attempts"] == 2
    assert w.stats.claimed == 1 and w.stats.done == 1
    assert sorted(s for _, s, _ in read_record(probe_record)) == [0, 1, 2]
    msg = next(m for i, e, m in events if (i, e) == (jid, "waiting"))
    assert "running on dead" in msg and "60s without a heartbeat" in msg


def test_exit_when_idle_exits_when_the_other_workers_job_ends(jobs_db, probe_record):
    q = JobQueue(open_store(jobs_db))
    jid = probe(jobs_db, probe_record)
    assert q.claim("live", stale_after=60).id == jid
    w, t, events = waiting_worker(jobs_db, stale_after=60)
    try:
        wait_for(lambda: any(e[:2] == (jid, "waiting") for e in events), 30, "it to wait")
        assert t.is_alive()
        assert q.finish(jid, "live", "done")  # the other worker finished it
        t.join(timeout=60)
        assert not t.is_alive()
    finally:
        w.stop()
        t.join(timeout=60)
    assert w.stats.claimed == 0 and get_job(jid, jobs_db)["worker"] == "live"
    assert [e for _, e, _ in events] == ["waiting"]  # told once, not at every poll
