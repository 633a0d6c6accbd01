"""`iro-bb align --resume RUN` through the installed console script, on a tiny run against the
fake OpenAI-compatible server of _fx_api (loopback, free): a run stopped by a budget, failed,
cancelled and finished resumes; options that may change on resume (budgets, concurrency) do;
options that would change what the run computes are refused with one line; --iterations may
grow (iterations 1..T kept as they are), never shrink."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import iro_blackbox
from iro_blackbox.errors import Cancelled

SCRIPT = Path(sys.executable).parent / "iro-bb"
SRC = str(Path(iro_blackbox.__file__).resolve().parents[1])  # the code under test first


def iro_bb(*args: str, home: Path) -> subprocess.CompletedProcess:
    assert SCRIPT.is_file(), f"the console script is not installed at {SCRIPT}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
        "IRO_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("IRO_DB", None)
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=600, env=env
    )


def status(db: Path, run: str) -> str:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT status FROM runs WHERE name=?", (run,)).fetchone()[0]
    finally:
        con.close()


def one_error_line(r: subprocess.CompletedProcess, needle: str) -> None:
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    errors = [x for x in r.stderr.splitlines() if x.startswith("error")]
    assert len(errors) == 1 and needle in errors[0], r.stderr


@pytest.fixture
def tiny_run(tmp_path, fake_api, tiny_lm_dir, tiny_bert_dir):
    train, evals = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train.write_text(
        "".join(json.dumps({"id": f"t{i}", "prompt": f"Say hi {i}."}) + "\n" for i in range(3))
    )
    evals.write_text(
        "".join(json.dumps({"id": f"e{i}", "prompt": f"Say bye {i}."}) + "\n" for i in range(2))
    )
    opts = dict(
        provider="openai", base_url=fake_api.base_url, model="m", tokenizer=str(tiny_lm_dir),
        iterations=1, w=2, k=2, l=4, max_tokens=8, value_backbone=str(tiny_bert_dir),
        value_epochs=1, seed=1, concurrency=2, run_name="r", out=str(tmp_path / "out"),
        api_mode="completions",
    )  # fmt: skip
    argv = ["align", str(train), "--eval", str(evals)]
    for k, v in opts.items():
        argv += ["--" + k.replace("_", "-"), str(v)]
    return argv, opts, train, evals


def test_resume_a_stopped_failed_cancelled_and_finished_run(tiny_run, fake_api, tmp_path):
    argv, opts, train, evals = tiny_run
    db, home = tmp_path / "s.db", tmp_path / "home"
    common = ["--db", str(db), "-q"]

    # stopped by a budget
    r = iro_bb(*argv, *common, "--max-requests", "25", home=home)
    one_error_line(r, "--max-requests 25")
    assert status(db, "r") == "stopped"
    sent = fake_api.count()

    # options that change what the run computes are refused, nothing sent; equal ones pass
    r = iro_bb("align", "--resume", "r", "--beta", "2", *common, home=home)
    one_error_line(r, "--beta 2 differs from the run's 1.0")
    r = iro_bb("align", "--resume", "r", "--w", "3", "--max-requests", "99", *common, home=home)
    one_error_line(r, "--w 3 differs")
    r = iro_bb("align", str(tmp_path / "other.jsonl"), "--resume", "r", *common, home=home)
    one_error_line(r, "DATA")
    assert fake_api.count() == sent and status(db, "r") == "stopped"

    # the budget given on resume wins over the stored one; a refused request fails the run
    fake_api.fail_next(("status", 400, {}, "no such thing"))
    r = iro_bb("align", "--resume", "r", "--beta", "1", "--max-requests", "1000", *common,
               home=home)  # fmt: skip
    one_error_line(r, "no such thing")
    assert status(db, "r") == "failed" and sent < fake_api.count() <= sent + 2  # 2 in flight

    # cancelled (as a job's cancel does) once a few more requests were answered
    from iro_blackbox import align

    with pytest.raises(Cancelled):
        align(None, resume="r", db=str(db), progress=False, max_requests=1000,
              cancel_check=lambda: fake_api.count() >= sent + 3)  # fmt: skip
    assert status(db, "r") == "cancelled"

    # the stored budget (25 requests) is spent: the resume gives a larger one and finishes
    r = iro_bb("align", "--resume", "r", "--max-requests", "1000", "--concurrency", "4",
               *common, home=home)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "report:" in r.stdout and status(db, "r") == "done"
    done = fake_api.count()

    # a finished run resumes as a no-op: nothing sent, the table printed again
    r = iro_bb("align", "--resume", "r", "--max-requests", "1000", *common, home=home)
    assert r.returncode == 0, r.stderr
    assert "pi_1" in r.stdout and fake_api.count() == done

    # once V_1 is trained, the value-model options are part of what the run computed (before,
    # nothing depends on them: a run stopped in its base evaluation takes new ones, stored)
    r = iro_bb("align", "--resume", "r", "--value-epochs", "3", *common, home=home)
    one_error_line(r, "--value-epochs 3 differs")
    argv2 = list(argv)
    argv2[argv2.index("--run-name") + 1] = "r2"
    argv2[argv2.index("--seed") + 1] = "2"  # another seed: nothing comes from the cache
    r = iro_bb(*argv2, *common, "--max-requests", "2", home=home)
    one_error_line(r, "--max-requests 2")
    r = iro_bb("align", "--resume", "r2", "--value-epochs", "2", "--max-requests", "3",
               *common, home=home)  # fmt: skip
    one_error_line(r, "--max-requests 3")
    con = sqlite3.connect(db)
    stored = json.loads(con.execute("SELECT config FROM runs WHERE name='r2'").fetchone()[0])
    con.close()
    assert stored["value_epochs"] == 2


def _sql(db: Path, query: str, *args) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(query, args).fetchall()
    finally:
        con.close()


def _up_to(db: Path, run: str, t: int) -> dict[str, list[tuple]]:
    """Everything stored for the run's iterations <= t, as it is (ids included)."""
    rid = _sql(db, "SELECT id FROM runs WHERE name=?", run)[0][0]
    return {
        table: _sql(db, f"SELECT * FROM {table} WHERE run_id=? AND t<=? ORDER BY id", rid, t)
        for table in ("rollouts", "value_models", "iterations")
    }


def test_resume_grows_the_iterations_of_a_finished_run(tiny_run, fake_api, tmp_path):
    """--resume RUN --iterations N (N > the run's) keeps iterations 1..T as they are, runs the
    new ones as a fresh run of N iterations would, and stores N; fewer is refused in one line."""
    from iro_blackbox import align

    argv, opts, train, evals = tiny_run
    db, home = tmp_path / "s.db", tmp_path / "home"
    common = ["--db", str(db), "-q"]
    r = iro_bb(*argv, *common, home=home)
    assert r.returncode == 0, r.stderr
    assert status(db, "r") == "done"
    before, sent = _up_to(db, "r", 1), fake_api.count()
    v1 = Path(before["value_models"][0][3])
    v1_files = {p: p.stat().st_mtime_ns for p in v1.rglob("*")}

    for bad, needle in (("0", "iterations must be an integer >= 1, got 0"),
                        ("-1", "iterations must be an integer >= 1")):  # fmt: skip
        r = iro_bb("align", "--resume", "r", "--iterations", bad, *common, home=home)
        one_error_line(r, needle)

    # the plan of the grown run counts only the new iteration (nothing created, nothing sent)
    est = align(None, resume="r", iterations=2, db=str(db), progress=False, dry_run=True).estimate
    assert est.stages and all(s.name.startswith("t=2") for s in est.stages), est.rows()
    assert est.total.requests > 0
    assert _sql(db, "SELECT COUNT(*) FROM iterations WHERE t=2") == [(0,)]
    assert json.loads(_sql(db, "SELECT config FROM runs WHERE name='r'")[0][0])["iterations"] == 1

    r = iro_bb("align", "--resume", "r", "--iterations", "2", *common, home=home)
    assert r.returncode == 0, r.stderr
    assert status(db, "r") == "done"
    assert _up_to(db, "r", 1) == before  # nothing of t <= 1 resampled, retrained, re-evaluated
    assert {p: p.stat().st_mtime_ns for p in v1.rglob("*")} == v1_files
    assert fake_api.count() - sent == est.total.requests  # only t=2's requests, as estimated
    stored = json.loads(_sql(db, "SELECT config FROM runs WHERE name='r'")[0][0])
    assert stored["iterations"] == 2
    assert json.loads((Path(opts["out"]) / "config.json").read_text())["iterations"] == 2
    its = _sql(db, "SELECT t, stage, metrics FROM iterations ORDER BY t")
    assert [(t, stage) for t, stage, _ in its] == [(0, "done"), (1, "done"), (2, "done")]
    assert json.loads(its[2][2])["eval_mean_reward"] is not None
    assert _sql(db, "SELECT COUNT(*) FROM value_models WHERE t=2") == [(1,)]
    metrics = json.loads((Path(opts["out"]) / "metrics.json").read_text())
    assert metrics["summary"]["iterations"] == 2 and len(metrics["iterations"]) == 3
    summary = json.loads(_sql(db, "SELECT metrics FROM runs WHERE name='r'")[0][0])
    assert summary["iterations"] == 2
    assert "pi_2" in (Path(opts["out"]) / "report.html").read_text()
    r = iro_bb("runs", "show", "r", "--db", str(db), home=home)
    assert r.returncode == 0 and "pi_2" in r.stdout, r.stderr

    # t=2 is what a fresh run of 2 iterations computes: the same answers, every request replayed
    sent = fake_api.count()
    argv2 = list(argv)
    argv2[argv2.index("--run-name") + 1] = "fresh"
    argv2[argv2.index("--out") + 1] = str(tmp_path / "fresh")
    argv2[argv2.index("--iterations") + 1] = "2"
    r = iro_bb(*argv2, *common, home=home)
    assert r.returncode == 0, r.stderr
    assert fake_api.count() == sent

    def answers(run: str) -> list[tuple]:
        rid = _sql(db, "SELECT id FROM runs WHERE name=?", run)[0][0]
        return _sql(db, "SELECT t, phase, method, search, idx, response, reward FROM rollouts "
                        "WHERE run_id=? ORDER BY t, phase, method, example_id, search, idx", rid)  # fmt: skip

    assert answers("r") == answers("fresh")

    # now fewer iterations than the run has are refused in one line, and nothing changes
    r = iro_bb("align", "--resume", "r", "--iterations", "1", *common, home=home)
    one_error_line(r, "--iterations 1 is fewer than the run's 2")
    assert status(db, "r") == "done" and fake_api.count() == sent


def test_growing_iterations_is_checked_before_anything_runs(tmp_path):
    """Fewer iterations are refused; so are more for a --fresh-prompts run whose iteration is
    half done (its prompt slice depends on T); a finished or untouched one may grow."""
    from types import SimpleNamespace

    from iro_blackbox.errors import ConfigError
    from iro_blackbox.iro.bookkeeping import resumed_config
    from iro_blackbox.iro.config import AlignConfig
    from iro_blackbox.store import RunRepository, open_store

    store = open_store(str(tmp_path / "s.db"))
    repo = RunRepository(store)
    cfg = AlignConfig.from_dict({"data": "d.jsonl", "iterations": 2, "fresh_prompts": True,
                                 "beta": "1,2"})  # fmt: skip
    run = repo.create("r", cfg.to_dict(), str(tmp_path / "r"), [("t0", "train", {"prompt": "x"})])
    ex = repo.examples(run.id)[0].pk
    cand = SimpleNamespace(text="a", reward=1.0, grade_error=None, score=None, selected=True,
                           finish_reason="length", completion_tokens=1)  # fmt: skip
    repo.add_rollouts(run.id, t=1, phase="train", method="sample", search=0, example_pk=ex,
                      prompt="x", candidates=[cand], usage={})  # fmt: skip
    for given, needle in ((0, "iterations must be an integer >= 1, got 0"),
                          (1, "--iterations 1 is fewer than the run's 2"),
                          (3, "iteration 1 of this --fresh-prompts run is unfinished")):  # fmt: skip
        with pytest.raises(ConfigError, match=needle.replace("-", r"\-")):
            resumed_config(repo, "r", {"iterations": given})
    assert resumed_config(repo, "r", {"iterations": 2}).run.iterations == 2
    repo.set_iteration(run.id, 1, "done")
    grown = resumed_config(repo, "r", {"iterations": 4})
    assert grown.run.iterations == 4 and grown.search.betas(4) == [1.0, 2.0, 2.0, 2.0]
    assert repo.find("r").config["iterations"] == 2  # stored once the run opens, not before
    store.close()
