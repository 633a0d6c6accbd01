"""`iro-bb align --resume RUN` through the installed console script, on a tiny run against the
fake OpenAI-compatible server of _fx_api (loopback, free): a run stopped by a budget, failed,
cancelled and finished resumes; options that may change on resume (budgets, concurrency) do;
options that would change what the run computes are refused with one line."""

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
