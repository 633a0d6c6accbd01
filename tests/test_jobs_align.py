"""A real align job through `iro-bb jobs submit align` and `iro-bb worker` processes (the openai
provider against the real llama-cpp-python server, smallest sizes): SIGKILL the worker
mid-iteration, a new worker re-claims the job after --stale-after and finishes it with every prompt
done exactly once and no answered request sent again; then a generate job and a cancel."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading

import pytest
from _fx_jobs import timed_proxy, wait_for, worker_proc

from iro_blackbox.cli.app import main
from iro_blackbox.jobs import Worker, cancel_job, get_job, job_logs

pytestmark = pytest.mark.slow

PROMPTS = [
    "Write one sentence about a rainy Monday.",
    "Write one sentence about a queue at the post office.",
    "Write one sentence about a delayed train.",
    "Write one sentence about doing the laundry.",
]


def rows(db, sql):
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def check_serve_cli(db, run, tmp_path):
    import subprocess
    import sys
    import urllib.request

    import openai
    from _fx_llama import free_port

    port = free_port()
    log = tmp_path / "serve.log"
    cmd = [
        sys.executable,
        "-m",
        "iro_blackbox.cli.app",
        "serve",
        "--run",
        run,
        "--port",
        str(port),
        "--db",
        db,
    ]
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**__import__("os").environ, "IRO_SERVE_API_KEY": "k-123"},
        )
    try:

        def up():
            assert proc.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(up, 300, "iro-bb serve", 0.5)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k-123", timeout=300)
        assert [m.id for m in client.models.list().data] == [run]
        r = client.chat.completions.create(
            model=run, max_tokens=8, seed=1, messages=[{"role": "user", "content": PROMPTS[0]}]
        )
        assert isinstance(r.choices[0].message.content, str)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bad").models.list()
        assert "serving run" in log.read_text() and "k-123" not in log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def asked_after_kill(proxy, n_before: int) -> int:
    """Distinct generation requests the proxy received after the kill (a retry sends the same
    body). Each sample is its own request (llama.cpp ignores n) and its own cache entry, so this
    equals the entries the store gained exactly when no answer stored before the kill was asked
    for again (an answer in flight when the worker died is asked again, and stored then)."""
    return len(
        {
            (r.path, json.dumps(r.body, sort_keys=True))
            for r in proxy.received[n_before:]
            if r.path.endswith("/completions")
        }
    )


@pytest.fixture
def proxy(llama_server):
    p = timed_proxy(llama_server.base_url)
    yield p
    p.stop()


def submit_align(capsys, db, data, evals, proxy, *extra):
    argv = [
        "jobs",
        "submit",
        "align",
        str(data),
        "--eval",
        str(evals),
        "--provider",
        "openai",
        "--base-url",
        proxy.base_url,
        "--model",
        "smollm2-135m-instruct",
        "--tokenizer",
        "smollm2-135m-instruct",
        "--iterations",
        "1",
        "--w",
        "2",
        "--k",
        "2",
        "--l",
        "8",
        "--max-tokens",
        "16",
        "--value-epochs",
        "1",
        "--concurrency",
        "2",
        "--db",
        db,
        *extra,
    ]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    return int(out.strip())


def test_align_job_survives_sigkill_then_generate_and_cancel(proxy, tmp_path, capsys):
    db = str(tmp_path / "jobs.db")
    data, evals = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    data.write_text(
        "".join(json.dumps({"id": f"t{i}", "prompt": p}) + "\n" for i, p in enumerate(PROMPTS[:3]))
    )
    evals.write_text(json.dumps({"id": "e0", "prompt": PROMPTS[3]}) + "\n")
    jid = submit_align(
        capsys, db, data, evals, proxy, "--seed", "5", "--out", str(tmp_path / "run")
    )
    run = get_job(jid, db)["args"]["options"]["run_name"]

    first = worker_proc(db, "--stale-after", "3", "--poll", "0.2", log=tmp_path / "w1.log")
    try:
        wait_for(
            lambda: (
                (rows(db, "SELECT count(*) FROM rollouts WHERE t=1 AND phase='train'") or [(0,)])[
                    0
                ][0]
                >= 4
            ),
            600,
            "iteration-1 rollouts",
            0.05,
        )
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    n_before = len(proxy.received)
    cached_before = rows(db, "SELECT count(*) FROM request_cache")[0][0]
    assert get_job(jid, db)["status"] == "running"
    assert rows(db, "SELECT stage FROM iterations WHERE t=1") != [("done",)]

    second = worker_proc(db, "--stale-after", "3", "--poll", "0.2", log=tmp_path / "w2.log")
    try:
        wait_for(lambda: get_job(jid, db)["status"] in ("done", "failed"), 900, "the job", 0.5)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=120)
    job = get_job(jid, db)
    assert job["status"] == "done", (job["error"], (tmp_path / "w2.log").read_text()[-3000:])
    assert job["attempts"] == 2
    assert job["progress"]["result"]["name"] == run
    assert job["progress"]["requests"] is not None and job["progress"]["tokens"] >= 0
    assert any("stopped heartbeating" in r["message"] for r in job_logs(jid, db))
    # every prompt done exactly once
    assert (
        rows(
            db,
            "SELECT t, phase, method, example_id, idx, count(*) c FROM rollouts "
            "GROUP BY 1,2,3,4,5 HAVING c > 1",
        )
        == []
    )
    assert rows(db, "SELECT count(*) FROM rollouts WHERE t=1 AND phase='train'")[0][0] == 3 * 4
    assert rows(db, "SELECT stage FROM iterations ORDER BY t") == [("done",), ("done",)]
    assert rows(db, f"SELECT status FROM runs WHERE name='{run}'") == [("done",)]
    # no answer stored before the kill was asked for again (see asked_after_kill)
    cached = rows(db, "SELECT count(*) FROM request_cache")[0][0] - cached_before
    assert asked_after_kill(proxy, n_before) == cached > 0

    # a generate job with the aligned run
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(json.dumps({"id": f"p{i}", "prompt": p}) + "\n" for i, p in enumerate(PROMPTS[:2]))
    )
    out = tmp_path / "answers.jsonl"
    assert (
        main(["jobs", "submit", "generate", str(prompts), "--run", run, "-o", str(out), "--db", db])
        == 0
    )
    gid = int(capsys.readouterr().out.strip())
    assert main(["worker", "--once", "--poll", "0.2", "--db", db]) == 0
    g = get_job(gid, db)
    assert g["status"] == "done", g["error"]
    answers = [json.loads(x) for x in out.read_text().splitlines()]
    assert [a["id"] for a in answers] == ["p0", "p1"] and all(
        isinstance(a["response"], str) for a in answers
    )
    assert g["progress"]["result"]["prompts"] == 2

    # `iro-bb serve` on the aligned run, with the official openai client
    check_serve_cli(db, run, tmp_path)

    # cancel a running align job: it stops at a safe point and ends "cancelled"
    cid = submit_align(
        capsys,
        db,
        data,
        evals,
        proxy,
        "--seed",
        "6",
        "--run-name",
        "to-cancel",
        "--out",
        str(tmp_path / "run2"),
    )
    w = Worker(db, poll=0.1, stale_after=30, exit_when_idle=True)
    t = threading.Thread(target=w.run)
    t.start()
    try:
        wait_for(lambda: (get_job(cid, db)["progress"] or {}).get("stage"), 300, "progress", 0.1)
        assert cancel_job(cid, db) == "running"
        wait_for(lambda: get_job(cid, db)["status"] != "running", 300, "the cancel", 0.2)
    finally:
        w.stop()
        t.join(timeout=300)
    assert get_job(cid, db)["status"] == "cancelled"
    assert rows(db, "SELECT status FROM runs WHERE name='to-cancel'") == [("cancelled",)]


def test_two_workers_on_postgresql_one_sigkilled_mid_job(proxy, pg_url, tmp_path, capsys):
    """Two worker processes claim from one PostgreSQL; the one that took the align job is
    SIGKILLed mid-iteration and the other finishes it: every rollout stored once, no answered
    request sent again."""
    from _fx_pg import sql_rows

    db = pg_url
    data, evals = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    data.write_text(
        "".join(json.dumps({"id": f"t{i}", "prompt": p}) + "\n" for i, p in enumerate(PROMPTS[:3]))
    )
    evals.write_text(json.dumps({"id": "e0", "prompt": PROMPTS[3]}) + "\n")
    jid = submit_align(capsys, db, data, evals, proxy, "--seed", "7", "--out", str(tmp_path / "r"))
    workers = [
        worker_proc(db, "--stale-after", "3", "--poll", "0.2", log=tmp_path / f"w{i}.log")
        for i in range(2)
    ]
    try:
        owner = wait_for(lambda: get_job(jid, db)["worker"], 300, "a claim", 0.1)
        pid = int(owner.split(":")[1])
        first = next(w for w in workers if w.pid == pid)
        other = next(w for w in workers if w.pid != pid)

        def train_rollouts() -> int:
            got = sql_rows(db, "SELECT count(*) FROM rollouts WHERE t=1 AND phase='train'")
            return got[0][0] if got else 0

        wait_for(lambda: train_rollouts() >= 4, 600, "iteration-1 rollouts", 0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        n_before = len(proxy.received)
        cached_before = sql_rows(db, "SELECT count(*) FROM request_cache")[0][0]
        wait_for(lambda: get_job(jid, db)["status"] in ("done", "failed"), 900, "the job", 0.5)
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
                w.wait(timeout=120)
    job = get_job(jid, db)
    assert job["status"] == "done", (job["error"], [(tmp_path / f"w{i}.log").read_text()[-2000:]
                                                    for i in range(2)])  # fmt: skip
    assert job["attempts"] == 2 and f":{other.pid}:" in job["worker"]  # the other finished it
    assert any("stopped heartbeating" in r["message"] for r in job_logs(jid, db))
    dup = "SELECT t, phase, method, example_id, search, idx, count(*) c FROM rollouts "
    assert sql_rows(db, dup + "GROUP BY 1,2,3,4,5,6 HAVING count(*) > 1") == []
    assert sql_rows(db, "SELECT count(*) FROM rollouts WHERE t=1 AND phase='train'") == [(12,)]
    assert sql_rows(db, "SELECT stage FROM iterations ORDER BY t") == [("done",), ("done",)]
    cached = sql_rows(db, "SELECT count(*) FROM request_cache")[0][0] - cached_before
    assert asked_after_kill(proxy, n_before) == cached > 0
