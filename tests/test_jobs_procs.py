"""Workers as real processes on one SQLite file: no job runs twice; a SIGKILLed worker's job is
re-claimed after --stale-after and resumes without repeating finished steps; SIGTERM requeues."""

from __future__ import annotations

import signal

from _fx_jobs import read_record, wait_for, worker_proc

from iro_blackbox.jobs import get_job, list_jobs, submit


def probe(db, record, **kw):
    return submit("probe", {"record": str(record), **kw}, db=db)


def test_two_worker_processes_never_run_the_same_job(jobs_db, probe_record, tmp_path):
    ids = [probe(jobs_db, probe_record, steps=2, sleep=0.05) for _ in range(40)]
    procs = [
        worker_proc(
            jobs_db,
            "--exit-when-idle",
            "--concurrency",
            "2",
            "--poll",
            "0.05",
            log=tmp_path / f"w{i}.log",
        )
        for i in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=240) == 0, (tmp_path / "w0.log").read_text()[-2000:]
    rec = read_record(probe_record)
    steps = sorted((j, s) for j, s, _ in rec)
    assert steps == sorted((j, s) for j in ids for s in range(2))  # each step exactly once
    runners = {}
    for j, _, pid in rec:
        runners.setdefault(j, set()).add(pid)
    assert all(len(p) == 1 for p in runners.values())  # never two processes on one job
    assert len({pid for _, _, pid in rec}) == 2  # both workers took part
    jobs = list_jobs(jobs_db, limit=100)
    assert {j["status"] for j in jobs} == {"done"} and {j["attempts"] for j in jobs} == {1}


def test_sigkilled_worker_job_resumes_on_another_worker(jobs_db, probe_record, tmp_path):
    jid = probe(jobs_db, probe_record, steps=30, sleep=0.1)
    first = worker_proc(jobs_db, "--stale-after", "2", "--poll", "0.1", log=tmp_path / "w1.log")
    wait_for(lambda: len(read_record(probe_record)) >= 5, 120, "the first worker's steps")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    killed_at = len(read_record(probe_record))
    assert get_job(jid, jobs_db)["status"] == "running"  # nobody told the store
    second = worker_proc(jobs_db, "--stale-after", "2", "--poll", "0.1", log=tmp_path / "w2.log")
    try:
        wait_for(lambda: get_job(jid, jobs_db)["status"] == "done", 180, "the job to finish", 0.2)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0
    rec = read_record(probe_record)
    assert sorted(s for _, s, _ in rec) == list(range(30))  # every step exactly once
    pids = [pid for _, _, pid in rec]
    assert set(pids[:killed_at]) == {first.pid} and set(pids[killed_at:]) == {second.pid}
    j = get_job(jid, jobs_db)
    assert j["attempts"] == 2 and j["progress"]["done"] == 30


def test_sigterm_requeues_running_job(jobs_db, probe_record, tmp_path):
    jid = probe(jobs_db, probe_record, steps=100, sleep=0.05)
    w = worker_proc(jobs_db, "--poll", "0.1", log=tmp_path / "w.log")
    wait_for(lambda: len(read_record(probe_record)) >= 3, 120, "the job to start")
    w.send_signal(signal.SIGTERM)
    assert w.wait(timeout=60) == 0
    j = get_job(jid, jobs_db)
    assert j["status"] == "queued" and j["worker"] is None
    assert "requeued" in (tmp_path / "w.log").read_text()
