"""The IRO loop end to end on real parts: SmolLM2 (local and behind the real llama-cpp-python
server), MiniLM value models, the VADER grader, a real SQLite store."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from iro_blackbox.cli.app import main

PROMPTS = [
    "Write one sentence about a rainy Monday.",
    "Write one sentence about a queue at the post office.",
    "Write one sentence about a delayed train.",
    "Write one sentence about doing the laundry.",
    "Write one sentence about a broken umbrella.",
]

SMALL = dict(iterations=2, w=2, k=2, l=8, max_tokens=16, value_epochs=1, seed=3)


@pytest.fixture
def tiny_data(tmp_path):
    train = tmp_path / "train.jsonl"
    evals = tmp_path / "eval.jsonl"
    train.write_text(
        "".join(json.dumps({"id": f"t{i}", "prompt": p}) + "\n" for i, p in enumerate(PROMPTS[:3]))
    )
    evals.write_text(
        "".join(
            json.dumps({"id": f"e{i}", "messages": [{"role": "user", "content": p}]}) + "\n"
            for i, p in enumerate(PROMPTS[3:])
        )
    )
    return train, evals


def _count(db, sql):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


@pytest.mark.slow
def test_align_local_end_to_end(tiny_data, tmp_path, capsys):
    from iro_blackbox import align, load_run

    train, evals = tiny_data
    db = str(tmp_path / "iro.db")
    out = tmp_path / "run"
    res = align(
        train, eval=str(evals), db=db, out=str(out), run_name="tiny", progress=False, **SMALL
    )
    assert res.name == "tiny"
    ts = [(i["t"], i["stage"]) for i in res.iterations]
    assert ts == [(0, "done"), (1, "done"), (2, "done")]
    m1 = res.iterations[1]["metrics"]
    for key in ("eval_mean_reward", "win_rate_vs_base", "train_mean_reward", "tokens", "value"):
        assert m1.get(key) is not None, key
    # what the search needs from V_t: ranking of held-out prompts' answers, and its validation
    v1 = m1["value"]
    assert v1["heldout"]["prompts"] == 2 and v1["heldout"]["answers"] == 2 * 4
    assert "val_pairwise_accuracy" in v1 and v1["loss"] == "mse"
    m0 = res.iterations[0]["metrics"]
    assert m0["eval_grader_reward"] == m0["bon_mean_reward"] >= m0["eval_mean_reward"]
    for it in res.iterations[1:]:
        m = it["metrics"]
        # the grader picks among the policy's complete answers, its own answer among them
        assert m["eval_grader_reward"] >= m["eval_mean_reward"]
        assert m["eval_answers_per_prompt"] >= SMALL["w"]
    # rollouts: t=1 samples W*K per training prompt; t=0 eval samples W*K per held-out prompt
    assert _count(db, "SELECT count(*) FROM rollouts WHERE t=1 AND phase='train'") == 3 * 4
    assert _count(db, "SELECT count(*) FROM rollouts WHERE t=0 AND phase='eval'") == 2 * 4
    assert (
        _count(
            db,
            "SELECT count(*) FROM rollouts WHERE reward IS NULL AND grade_error IS NULL AND phase!='generate'",
        )
        == 0
    )
    assert (
        _count(db, "SELECT count(*) FROM rollouts WHERE t=1 AND phase='train' AND selected=1") == 3
    )
    assert _count(db, "SELECT count(*) FROM value_models") == 2
    assert (out / "value" / "v1").is_dir() and (out / "value" / "v2").is_dir()
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "tiny" in html
    assert "Value models" in html and "held-out pair accuracy" in html
    assert json.loads((out / "metrics.json").read_text())["run"] == "tiny"
    assert (out / "reward_by_iteration.png").stat().st_size > 1000

    # re-running the same command is a no-op resume: no new rollouts, no retraining
    before = _count(db, "SELECT count(*) FROM rollouts")
    res2 = align(
        train, eval=str(evals), db=db, out=str(out), run_name="tiny", progress=False, **SMALL
    )
    assert _count(db, "SELECT count(*) FROM rollouts") == before
    assert res2.metrics == res.metrics

    # runs show prints the table; generate decodes with the aligned policy
    assert main(["runs", "show", "tiny", "--db", db]) == 0
    assert "pi_2" in capsys.readouterr().out
    policy = load_run("tiny", db=db)
    gens = policy.generate(["Write one sentence about Tuesday."], max_tokens=16)
    assert len(gens) == 1 and gens[0].text.strip() and gens[0].score is not None
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(
        '{"prompt": "Say something about snow."}\n{"prompt": "Say something about fog."}\n'
    )
    outp = tmp_path / "answers.jsonl"
    assert main(["generate", str(prompts), "--run", "tiny", "-o", str(outp), "--db", db, "-q"]) == 0
    lines = [json.loads(x) for x in outp.read_text().splitlines()]
    assert [x["id"] for x in lines] == ["line-1", "line-2"] and all(x["response"] for x in lines)

    # eval: every method on the held-out file, at equal compute, JSON written and printed
    report = tmp_path / "eval.json"
    assert main(["eval", str(evals), "--run", "tiny", "--db", db, "--json", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "best-of-4" in printed and "iro (V_1..V_T)" in printed
    ev = json.loads(report.read_text())
    assert (
        ev["n"] == 4 and ev["prompts"] == 2 and set(ev["methods"]) == {"base", "bon", "cbs", "iro"}
    )
    ms = ev["methods"]
    assert ms["bon"]["mean_reward"] >= ms["base"]["mean_reward"]
    for name in ("cbs", "iro"):
        assert ms[name]["grader_pick_reward"] >= ms[name]["mean_reward"]
        assert ms[name]["answers_per_prompt"] >= 2 and 0.0 <= ms[name]["win_rate_vs_base"] <= 1.0
    assert ms["cbs"]["value_models"] == 1 and ms["iro"]["value_models"] == 2

    # the equal-compute picture: IRO at two search sizes beside Best-of-n up to the largest
    png = tmp_path / "compute.png"
    argv = ["eval", str(evals), "--run", "tiny", "--db", db, "--json", str(report)]
    assert main([*argv, "--methods", "bon", "--budgets", "2,8", "--plot", str(png)]) == 0
    ev = json.loads(report.read_text())
    assert [(b["budget"], b["w"], b["k"]) for b in ev["iro_budgets"]] == [(2, 1, 2), (8, 4, 2)]
    assert [c["n"] for c in ev["bon_curve"]] == [1, 2, 4, 8] and ev["n"] == 4
    assert ev["methods"]["bon"]["n"] == 4 and png.stat().st_size > 1000
    assert (out / "compute.json").is_file() and (out / "reward_at_budgets.png").is_file()
    assert "reward at budgets" in (out / "report.html").read_text()  # the run's report has it


BAD_CASES = [
    (["align", "{data}/missing.jsonl"], "file not found"),
    (
        [
            "align",
            "{train}",
            "--grader",
            '{"type": "string_check", "name": "x", "input": "a", "reference": "b", "operation": "eqq"}',
        ],
        "operation",
    ),
    (["align", "{train}", "--grader", "{data}/nope.json"], "grader"),
    (["align", "{train}", "--model", "no/such-model-here"], "model"),
    (["align", "{train}", "--w", "0"], "w must be an integer >= 1"),
    (
        [
            "align",
            "{train}",
            "--provider",
            "openai",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--tokenizer",
            "smollm2-135m-instruct",
        ],
        "127.0.0.1:9",
    ),
]


@pytest.mark.parametrize("args,msg", BAD_CASES)
def test_bad_input_is_one_clear_line(tiny_data, tmp_path, args, msg):
    train, _ = tiny_data
    env_db = str(tmp_path / "bad.db")
    args = [a.replace("{data}", str(tmp_path)).replace("{train}", str(train)) for a in args]
    r = subprocess.run(
        [sys.executable, "-m", "iro_blackbox.cli.app", *args, "--db", env_db, "-q"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "IRO_HOME": str(tmp_path / "home")},
    )
    assert r.returncode != 0
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    assert msg in r.stderr, r.stderr
    assert len([x for x in r.stderr.splitlines() if x.startswith("error")]) == 1, r.stderr
