"""SIGKILL in the middle of a GUIDED search (iteration 2 of 2: chunk-level beam search steered by
V_1) of `iro-bb align` (the installed console script) against the REAL llama-cpp-python server,
then the same command again: it finishes, no request whose answer was stored is sent again (the
request cache and the stored rollouts, told apart by their search index), and the run's metrics
are the stored ones."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_align_api import PROMPTS, generation_calls

import iro_blackbox
from iro_blackbox.search import value_pick

SCRIPT = Path(sys.executable).parent / "iro-bb"
SRC = str(Path(iro_blackbox.__file__).resolve().parents[1])  # the code under test first

# each training prompt gets N_GUIDED / W guided searches at t=2, each storing its W final beams
W, K, N_TRAIN, N_GUIDED = 2, 2, 3, 4


def rows(db: str, sql: str) -> list:
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:  # the run has not made its tables yet
        return []
    finally:
        con.close()


def count(db: str, sql: str) -> int:
    r = rows(db, sql)
    return r[0][0] if r else 0


@pytest.mark.slow
def test_sigkill_mid_guided_search_then_resume(llama_proxy, tmp_path):
    assert SCRIPT.is_file(), f"the console script is not installed at {SCRIPT}"
    proxy = llama_proxy
    train, evals = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train.write_text("".join(json.dumps({"id": f"t{i}", "prompt": p}) + "\n"
                             for i, p in enumerate(PROMPTS[:N_TRAIN])))  # fmt: skip
    evals.write_text("".join(json.dumps({"id": f"e{i}", "prompt": p}) + "\n"
                             for i, p in enumerate(PROMPTS[N_TRAIN:])))  # fmt: skip
    db, out = str(tmp_path / "guided.db"), tmp_path / "out"
    cmd = [str(SCRIPT), "align", str(train), "--eval", str(evals), "--provider", "openai",
           "--base-url", proxy.base_url, "--model", "smollm2-135m-instruct",
           "--tokenizer", "smollm2-135m-instruct", "--iterations", "2", "--w", str(W),
           "--k", str(K), "--l", "8", "--max-tokens", "16", "--guided-rollouts", str(N_GUIDED),
           "--value-epochs", "1", "--seed", "5", "--concurrency", "2", "--run-name", "guided",
           "--out", str(out), "--db", db, "-q"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    guided = "SELECT count(*) FROM rollouts WHERE t=2 AND phase='train'"
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # the first guided search's first answers are stored: the rest of it, and the second
        # search, are still to come (searches of one iteration run one after the other)
        while count(db, guided) < 1:
            assert p.poll() is None, p.stderr.read().decode()  # type: ignore[union-attr]
            time.sleep(0.05)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    guided_before = count(db, guided)
    assert rows(db, "SELECT stage FROM iterations WHERE t=1") == [("done",)]
    assert rows(db, "SELECT stage FROM iterations WHERE t=2") != [("done",)]
    assert count(db, guided + " AND search=1") == 0  # killed inside the first guided search
    cached_before = count(db, "SELECT count(*) FROM request_cache")
    calls_before = len(generation_calls(proxy))
    sent_before = {c.raw for c in generation_calls(proxy)}  # retries: one body

    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "report:" in r.stdout

    # every guided row once: (search, idx) tells a prompt's rows apart
    dup = rows(db, "SELECT t, phase, method, example_id, search, idx, count(*) c FROM rollouts "
                   "GROUP BY 1,2,3,4,5,6 HAVING c > 1")  # fmt: skip
    assert dup == []
    # each prompt's N_GUIDED / W searches, each whole: candidates 0..n-1, none missing
    searches = rows(db, "SELECT example_id, search, count(*), max(idx) FROM rollouts "
                        "WHERE t=2 AND phase='train' AND method='cbs' GROUP BY 1, 2")  # fmt: skip
    assert sorted((s for _, s, _, _ in searches)) == sorted(list(range(N_GUIDED // W)) * N_TRAIN)
    assert all(n == last + 1 and n >= W for _, _, n, last in searches), searches
    assert guided_before < count(db, guided)
    assert rows(db, "SELECT stage FROM iterations ORDER BY t") == [("done",)] * 3

    # no answer stored before the kill was asked for again: the requests sent before it that
    # were not answered (in flight when the process died) are the only ones sent twice, and
    # every request sent after it stored a new answer
    sent_after = {c.raw for c in generation_calls(proxy)} - sent_before
    again = {c.raw for c in generation_calls(proxy)[calls_before:]} & sent_before
    cached_after = count(db, "SELECT count(*) FROM request_cache")
    assert sent_after and len(sent_after) + len(again) == cached_after - cached_before
    assert len(again) <= len(sent_before) - cached_before

    # what the run reports is what the store holds
    metrics = json.loads((out / "metrics.json").read_text())
    stored = {t: json.loads(m) for t, m in rows(db, "SELECT t, metrics FROM iterations")}
    assert {i["t"]: i["metrics"] for i in metrics["iterations"]} == stored
    # pi_2's answer to each held-out prompt: its stored candidate with the best value score
    by_ex: dict[int, list[tuple]] = {}
    for ex, response, score, reward in rows(
        db, "SELECT example_id, response, score, reward FROM rollouts WHERE t=2 AND "
            "phase='eval' AND method='cbs' ORDER BY example_id, search, idx"
    ):  # fmt: skip
        by_ex.setdefault(ex, []).append((response, score, reward or 0.0))
    assert len(by_ex) == len(PROMPTS) - N_TRAIN
    answers = [rs[value_pick([r[0] for r in rs], [r[1] for r in rs])][2] for rs in by_ex.values()]
    assert stored[2]["eval_mean_reward"] == pytest.approx(sum(answers) / len(answers))
