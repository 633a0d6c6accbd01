"""The CLI skeleton: help, data check, runs list/show, cache; errors are one line, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from iro_blackbox.cli.app import main
from iro_blackbox.store import Iteration, Run, open_store


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "iro_blackbox.cli.app", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_help_lists_commands():
    r = run_cli("--help")
    assert r.returncode == 0
    for cmd in ("data", "runs", "cache"):
        assert cmd in r.stdout


def test_data_check_bad_line_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"prompt": "ok"}\n{"prompt": "ok2"}\n{"prompt": 3}\n')
    r = run_cli("data", "check", str(p), "--no-tokens")
    assert r.returncode == 2
    assert f"{p}:3:" in r.stderr and "'prompt' must be a string" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_data_check_good_file_prints_summary(tmp_path):
    p = tmp_path / "good.jsonl"
    p.write_text(
        json.dumps({"prompt": "Hello there", "ref": "x"})
        + "\n"
        + json.dumps({"messages": [{"role": "user", "content": "A longer question here?"}]})
        + "\n"
    )
    r = run_cli("data", "check", str(p))
    assert r.returncode == 0, r.stderr
    assert "examples" in r.stdout and "2" in r.stdout
    assert "prompt tokens" in r.stdout and "p50" in r.stdout
    assert "ref (1)" in r.stdout


def test_missing_file_is_one_line(tmp_path, capsys):
    code = main(["data", "check", str(tmp_path / "nope.jsonl"), "--no-tokens"])
    err = capsys.readouterr().err
    assert code == 2 and "file not found" in err and "Traceback" not in err


def test_runs_list_and_show(tmp_path, capsys):
    db = str(tmp_path / "r.db")
    st = open_store(db)
    with st.session() as s:
        r = Run(name="demo-run", status="done", config={"model": "smollm2", "provider": "hf"})
        s.add(r)
        s.flush()
        s.add(
            Iteration(
                run_id=r.id,
                t=1,
                stage="done",
                metrics={"eval_mean_reward": 0.42, "win_rate_vs_base": 0.6},
            )
        )
    assert main(["runs", "list", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "demo-run" in out and "0.420" in out
    assert main(["runs", "show", "demo-run", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "+0.420" in out and "0.60" in out and "pi_1" in out
    assert main(["runs", "show", "nope", "--db", db]) == 2
    assert "no run named 'nope'" in capsys.readouterr().err


def test_cache_stats_and_clear(tmp_path, capsys):
    from iro_blackbox.store import RequestCacheStore

    db = str(tmp_path / "c.db")
    rc = RequestCacheStore(open_store(db))
    rc.put(rc.key({"a": 1}), "openai", {"a": 1}, {"x": 1})
    assert main(["cache", "stats", "--db", db]) == 0
    assert "openai" in capsys.readouterr().out
    assert main(["cache", "clear", "--yes", "--db", db]) == 0
    assert "deleted 1" in capsys.readouterr().out


def test_newer_database_is_one_line(tmp_path):
    import sqlite3

    db = tmp_path / "n.db"
    open_store(str(db)).close()
    con = sqlite3.connect(db)
    con.execute("UPDATE iro_meta SET value='999' WHERE key='schema_version'")
    con.commit()
    r = run_cli("runs", "list", "--db", str(db))
    assert (
        r.returncode != 0 and "newer than this iro-bb" in r.stderr and "Traceback" not in r.stderr
    )


ISSUE_USAGE_ERRORS = [
    (["frobnicate"], "iro-bb [OPTIONS] COMMAND", "No such command 'frobnicate'"),
    (["align", "--nope", "x"], "iro-bb align [OPTIONS]", "No such option: --nope"),
    (["align", "--w", "abc"], "iro-bb align [OPTIONS]", "Invalid value for '--w'"),
    (["generate"], "iro-bb generate [OPTIONS]", "Missing argument"),
    (["runs", "show"], "iro-bb runs show [OPTIONS]", "Missing argument"),
    (["jobs", "show", "abc"], "iro-bb jobs show [OPTIONS]", "Invalid value"),
    (["serve", "--port", "eighty"], "iro-bb serve [OPTIONS]", "Invalid value for '--port'"),
]


def console_script() -> str:
    """The installed `iro-bb` script (what a user runs), next to this Python."""
    from pathlib import Path

    path = Path(sys.executable).parent / "iro-bb"
    assert path.is_file(), f"the console script is not installed at {path}"
    return str(path)


@pytest.mark.parametrize(
    "argv,usage,needle",
    ISSUE_USAGE_ERRORS,
    ids=lambda x: " ".join(x) if isinstance(x, list) else None,
)
def test_usage_errors_print_usage_and_one_error_line(argv, usage, needle):
    r = subprocess.run([console_script(), *argv], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stdout + r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert lines[0].startswith("Usage: " + usage), r.stderr
    errors = [x for x in lines if x.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], r.stderr
    assert len(lines) == 2, r.stderr  # the usage line and the error line, nothing else


def test_version_and_bare_command():
    from iro_blackbox import __version__

    r = subprocess.run([console_script(), "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"iro-bb {__version__}"
    r = subprocess.run([console_script(), "runs"], capture_output=True, text=True, timeout=60)
    help_text = r.stdout + r.stderr  # the group's help (rich prints it to stdout)
    assert r.returncode == 2 and "list" in help_text and "Traceback" not in help_text


def test_eval_checks_its_output_paths_before_any_work(tmp_path, capsys):
    data = tmp_path / "t.jsonl"
    data.write_text('{"prompt": "hi"}\n')
    db = str(tmp_path / "e.db")
    base = ["eval", str(data), "--run", "no-such-run", "--db", db]
    cases = [
        (["--json", str(tmp_path / "missing" / "e.json")], "does not exist"),
        (["--json", str(tmp_path)], "is a folder"),
        (["--budgets", "2", "--plot", str(tmp_path / "nope" / "c.png")], "--plot"),
    ]
    for extra, needle in cases:
        code = main([*base, *extra])
        err = capsys.readouterr().err
        errors = [x for x in err.splitlines() if x.startswith("error")]
        # refused before the run is even looked up (no "no run named" error)
        assert code != 0 and len(errors) == 1 and needle in errors[0], err
        assert "Traceback" not in err
