"""The IRO loop through the `openai` provider against the REAL llama-cpp-python server (same model
behind an API), with a pass-through proxy of the test's own that records every HTTP request."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

PROMPTS = [
    "Write one sentence about a rainy Monday.",
    "Write one sentence about a queue at the post office.",
    "Write one sentence about a delayed train.",
    "Write one sentence about doing the laundry.",
    "Write one sentence about a broken umbrella.",
]


def generation_calls(proxy) -> list:
    """The generation requests the proxy in front of the real server received, in order."""
    return [r for r in proxy.received if r.path.endswith("/completions")]


def probed(proxy, db, **opts) -> None:
    """Probe the endpoint into the store first (its tiny requests are sent once per endpoint and
    then reused), so the proxy counts only the run's own requests."""
    from iro_blackbox.providers.openai import probe_endpoint
    from iro_blackbox.store import open_store

    probe_endpoint(proxy.base_url, opts["model"], tokenizer=opts.get("tokenizer"),
                   store=open_store(db))  # fmt: skip
    proxy.received.clear()


@pytest.fixture
def data(tmp_path):
    train = tmp_path / "train.jsonl"
    evals = tmp_path / "eval.jsonl"
    train.write_text(
        "".join(json.dumps({"id": f"t{i}", "prompt": p}) + "\n" for i, p in enumerate(PROMPTS[:3]))
    )
    evals.write_text(
        "".join(json.dumps({"id": f"e{i}", "prompt": p}) + "\n" for i, p in enumerate(PROMPTS[3:]))
    )
    return train, evals


def api_options(base_url: str) -> dict:
    return dict(
        provider="openai",
        base_url=base_url,
        model="smollm2-135m-instruct",
        tokenizer="smollm2-135m-instruct",
        iterations=1,
        w=2,
        k=2,
        l=8,
        max_tokens=16,
        value_epochs=1,
        seed=5,
        concurrency=4,
    )


@pytest.mark.slow
def test_align_through_openai_provider_replays_from_cache(llama_proxy, data, tmp_path):
    proxy = llama_proxy
    from iro_blackbox import align

    train, evals = data
    db = str(tmp_path / "api.db")
    opts = api_options(proxy.base_url)
    probed(proxy, db, **opts)
    res = align(
        train,
        eval=str(evals),
        db=db,
        run_name="api-1",
        out=str(tmp_path / "o1"),
        progress=False,
        **opts,
    )
    assert [i["stage"] for i in res.iterations] == ["done", "done"]
    assert res.metrics["iro_mean_reward"] is not None
    first = len(generation_calls(proxy))
    assert first > 0
    # llama.cpp ignores n: every one of the W*K samples was its own request, none repeated
    bodies = [c.raw for c in generation_calls(proxy)]
    assert len(set(bodies)) == len(bodies)

    # the same options under another run name: every response replays from the request cache
    proxy.received.clear()
    res2 = align(
        train,
        eval=str(evals),
        db=db,
        run_name="api-2",
        out=str(tmp_path / "o2"),
        progress=False,
        **opts,
    )
    assert generation_calls(proxy) == []
    assert (
        res2.iterations[0]["metrics"]["eval_mean_reward"]
        == res.iterations[0]["metrics"]["eval_mean_reward"]
    )

    # the API key never reaches the store
    raw = open(db, "rb").read()
    assert b"sk-" not in raw


def _rows(db: str, sql: str) -> list:
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


@pytest.mark.slow
def test_sigkill_mid_iteration_then_resume(llama_proxy, data, tmp_path):
    proxy = llama_proxy
    train, evals = data
    db = str(tmp_path / "kill.db")
    o = api_options(proxy.base_url)
    cmd = [
        sys.executable,
        "-m",
        "iro_blackbox.cli.app",
        "align",
        str(train),
        "--eval",
        str(evals),
        "--provider",
        "openai",
        "--base-url",
        o["base_url"],
        "--model",
        o["model"],
        "--tokenizer",
        o["tokenizer"],
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
        "--seed",
        "5",
        "--concurrency",
        "2",
        "--run-name",
        "killme",
        "--out",
        str(tmp_path / "kout"),
        "--db",
        db,
        "-q",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    # kill once some training rollouts of iteration 1 are stored (mid-iteration)
    while time.time() < deadline:
        n = _rows(db, "SELECT count(*) FROM rollouts WHERE t=1 AND phase='train'")
        if n and n[0][0] >= 4:
            break
        assert p.poll() is None, p.stderr.read().decode()
        time.sleep(0.05)
    else:
        p.kill()
        pytest.fail("align never reached iteration 1")
    p.send_signal(signal.SIGKILL)
    p.wait()
    stored_before = _rows(db, "SELECT count(*) FROM rollouts")[0][0]
    cached_before = _rows(db, "SELECT count(*) FROM request_cache")[0][0]
    assert _rows(db, "SELECT stage FROM iterations WHERE t=1") != [("done",)]
    calls_before = list(generation_calls(proxy))

    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    assert "report:" in r.stdout
    # nothing duplicated, nothing lost
    dup = _rows(
        db,
        "SELECT t, phase, method, example_id, idx, count(*) c FROM rollouts "
        "GROUP BY 1,2,3,4,5 HAVING c > 1",
    )
    assert dup == []
    assert _rows(db, "SELECT count(*) FROM rollouts WHERE t=1 AND phase='train'")[0][0] == 3 * 4
    assert _rows(db, "SELECT count(*) FROM rollouts")[0][0] > stored_before
    assert _rows(db, "SELECT stage FROM iterations ORDER BY t") == [("done",), ("done",)]
    # no answer stored before the kill was asked for again: every request sent after it (each
    # sample its own request: llama.cpp ignores n) stored an answer the store did not have (an
    # answer in flight when the process died is asked again, and stored then)
    after = {c.raw for c in generation_calls(proxy)[len(calls_before) :]}  # retries: one body
    cached_after = _rows(db, "SELECT count(*) FROM request_cache")[0][0]
    assert after and len(after) == cached_after - cached_before
