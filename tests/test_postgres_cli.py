"""Every command on a real PostgreSQL store (`--db postgresql+psycopg://...`): probe, align
through the openai provider (the real llama server behind a counting proxy), runs, generate, eval,
cache, jobs and a worker; then a second align of the same options replays every response from the
request cache in PostgreSQL. Bad database targets are one line and exit 1 before any work."""

from __future__ import annotations

import json

import pytest
from _fx_pg import sql_rows

from iro_blackbox.cli.app import main

pytestmark = pytest.mark.slow


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_every_command_on_postgresql(llama_proxy, pg_url, tmp_path, capsys):
    db, url = pg_url, llama_proxy.base_url
    train, evals, prompts = (tmp_path / f"{n}.jsonl" for n in ("train", "eval", "prompts"))
    topics = ["a rainy Monday", "a queue", "a delayed train", "the laundry", "a lost key"]
    for path, part, key in ((train, topics[:3], "t"), (evals, topics[3:4], "e"),
                            (prompts, topics[4:], "p")):  # fmt: skip
        path.write_text("".join(json.dumps({"id": f"{key}{i}", "prompt": f"One sentence about {t}."})
                                + "\n" for i, t in enumerate(part)))  # fmt: skip
    code, out, err = cli(capsys, "probe", "--base-url", url, "--model", "smollm2-135m-instruct",
                         "--db", db)  # fmt: skip
    assert code == 0, err
    assert "completions" in out
    align = ["align", train, "--eval", evals, "--provider", "openai", "--base-url", url,
             "--model", "smollm2-135m-instruct", "--tokenizer", "smollm2-135m-instruct", "-T", "1",
             "--w", "2", "--k", "2", "--l", "8", "--max-tokens", "16", "--value-epochs", "1",
             "--seed", "3", "--db", db, "-q"]  # fmt: skip
    code, out, err = cli(capsys, *align, "--run-name", "pg1", "--out", tmp_path / "pg1")
    assert code == 0, err
    sent = llama_proxy.count()
    assert sql_rows(db, "SELECT status FROM runs WHERE name = 'pg1'") == [("done",)]
    assert sql_rows(db, "SELECT count(*) FROM rollouts WHERE phase = 'train'")[0][0] == 3 * 4

    code, out, err = cli(capsys, "runs", "list", "--db", db)
    assert code == 0 and "pg1" in out, err
    code, out, err = cli(capsys, "runs", "show", "pg1", "--db", db)
    assert code == 0 and "pi_1" in out, err
    code, out, err = cli(capsys, "generate", prompts, "--run", "pg1", "-o", tmp_path / "o.jsonl",
                         "--db", db, "-q")  # fmt: skip
    assert code == 0, err
    assert json.loads((tmp_path / "o.jsonl").read_text())["id"] == "p0"
    code, out, err = cli(capsys, "eval", evals, "--run", "pg1", "--methods", "base,iro",
                         "--db", db, "-q")  # fmt: skip
    assert code == 0, err
    assert set(json.loads(out)["methods"]) == {"base", "iro"}
    code, out, err = cli(capsys, "cache", "stats", "--db", db)
    assert code == 0 and "openai" in out, err

    code, out, err = cli(capsys, "jobs", "submit", "generate", prompts, "--run", "pg1",
                         "-o", tmp_path / "j.jsonl", "--db", db)  # fmt: skip
    assert code == 0, err
    jid = int(out.strip())
    code, out, err = cli(capsys, "worker", "--once", "--poll", "0.1", "--db", db)
    assert code == 0, err
    code, out, err = cli(capsys, "jobs", "show", jid, "--db", db)
    assert code == 0 and "done" in out, err
    # the job decoded what `generate` had: the same answers, no new request
    assert (tmp_path / "j.jsonl").read_text() == (tmp_path / "o.jsonl").read_text()

    # the same options under another name: every response replays from PostgreSQL's cache
    before = llama_proxy.count()
    code, out, err = cli(capsys, *align, "--run-name", "pg2", "--out", tmp_path / "pg2")
    assert code == 0, err
    assert llama_proxy.count() == before and sent > 0
    m = sql_rows(db, "SELECT name, metrics FROM runs WHERE name IN ('pg1', 'pg2') ORDER BY name")
    assert m[0][1] == m[1][1]


@pytest.mark.parametrize("target,needle", [
    ("postgresql+psycopg://postgres@127.0.0.1:{port}/x", "cannot connect"),
    ("postgresql+psycopg://nobody:secret@{host}/postgres", "cannot log in"),
    ("{server}/missing_db", "does not exist"),
])  # fmt: skip
def test_bad_postgresql_targets_fail_in_one_line(pg_server, capsys, tmp_path, target, needle):
    from _fx_llama import free_port

    url = target.format(port=free_port(), host=pg_server.url.rsplit("@", 1)[1],
                        server=pg_server.url)  # fmt: skip
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "hi"}) + "\n")
    for argv in (["runs", "list", "--db", url], ["align", str(data), "--db", url, "-q"]):
        code, out, err = cli(capsys, *argv)
        lines = [x for x in err.splitlines() if x.strip()]
        assert code == 1 and len(lines) == 1 and needle in lines[0], err
        assert "secret" not in err and "Traceback" not in err
