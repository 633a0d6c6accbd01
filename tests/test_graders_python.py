"""The python grader: user code in worker processes with a timeout and a memory limit. Code that
raises, loops forever, returns a string, allocates too much or kills its process ends as a
recorded error while the rest of the batch completes."""

from __future__ import annotations

import asyncio
import time

import pytest

from iro_blackbox.errors import ConfigError
from iro_blackbox.graders import load_grader

MISBEHAVING = """
import os

def grade(sample, item):
    mode = item["mode"]
    if mode == "ok":
        return len(sample["output_text"]) / 10
    if mode == "raise":
        raise ValueError("no good: " + sample["output_text"])
    if mode == "loop":
        while True:
            pass
    if mode == "string":
        return "high"
    if mode == "none":
        return None
    if mode == "nan":
        return float("nan")
    if mode == "memory":
        hog = bytearray(2 * 1024 ** 3)
        return len(hog)
    if mode == "crash":
        os._exit(3)
    if mode == "exit":
        raise SystemExit(2)
    if mode == "print":
        print("chatter on stdout must not break the protocol")
        return 0.25
    if mode == "json":
        return sample["output_json"]["n"] + item["nested"]["k"]
"""


def grade(grader, samples, items):
    return asyncio.run(grader.grade(samples, items))


@pytest.fixture
def misbehaving():
    g = load_grader(
        {
            "type": "python",
            "name": "mixed",
            "source": MISBEHAVING,
            "timeout": 1.5,
            "memory_limit_mb": 256,
            "workers": 2,
            "error_score": -1,
        }
    )
    yield g
    g.close()


def test_failures_are_recorded_and_the_batch_completes(misbehaving):
    modes = [
        "ok",
        "raise",
        "loop",
        "string",
        "none",
        "nan",
        "memory",
        "crash",
        "exit",
        "print",
        "loop",
        "ok",
    ]
    out = grade(misbehaving, ["abcde"] * len(modes), [{"mode": m} for m in modes])
    by = dict(zip(modes, out, strict=True))
    assert by["ok"].score == 0.5 and by["ok"].error is None
    assert out[-1].score == 0.5 and out[-1].error is None  # after two kills, still grading
    assert by["print"].score == 0.25 and by["print"].error is None
    expected = {
        "raise": "ValueError: no good: abcde (line 9)",
        "loop": "timed out after 1.5 s (worker killed)",
        "string": "grade() returned str 'high', expected a number",
        "none": "grade() returned NoneType None, expected a number",
        "nan": "grade() returned nan, expected a finite number",
        "memory": "MemoryError",
        "crash": "worker crashed (exit code 3)",
        "exit": "SystemExit: 2",
    }
    for mode, message in expected.items():
        assert by[mode].score == -1, mode
        assert by[mode].error is not None and by[mode].error.startswith(message), (mode, by[mode])
    assert out[10].error == expected["loop"]
    # both loops and the crash cost a worker; each was replaced when next needed
    assert misbehaving.pool.lost == 3
    assert misbehaving.pool.restarts >= 2


def test_two_workers_grade_at_the_same_time(tmp_path):
    """Each call waits for the other to have started (files as a barrier): only two calls
    running at once both finish; one after the other, the first would time out."""
    source = (
        "import os, time\n\n"
        "def grade(sample, item):\n"
        f"    open(os.path.join({str(tmp_path)!r}, item['me']), 'w').close()\n"
        f"    while not os.path.exists(os.path.join({str(tmp_path)!r}, item['other'])):\n"
        "        time.sleep(0.01)\n"
        "    return 1.0\n"
    )
    g = load_grader({"type": "python", "source": source, "workers": 2, "timeout": 300})
    try:
        out = grade(g, ["x", "y"], [{"me": "a", "other": "b"}, {"me": "b", "other": "a"}])
        assert [(x.score, x.error) for x in out] == [(1.0, None), (1.0, None)]
    finally:
        g.close()


def test_sample_and_item_shapes(misbehaving):
    out = grade(misbehaving, ['{"n": 2}', "not json"], [{"mode": "json", "nested": {"k": 3}}] * 2)
    assert out[0].score == 5.0 and out[0].error is None
    assert out[1].error.startswith("TypeError")  # output_json is None for non-JSON text


def test_grader_from_file_with_sibling_import_and_hash_of_content(tmp_path):
    (tmp_path / "helpers.py").write_text("def words(t):\n    return len(t.split())\n")
    f = tmp_path / "my_grader.py"
    f.write_text(
        "from helpers import words\n\ndef score(sample, item):\n    return words(sample['output_text'])\n"
    )
    spec_file = tmp_path / "grader.json"
    spec_file.write_text(
        '{"type": "python", "name": "words", "file": "my_grader.py", "function": "score"}'
    )
    g = load_grader(str(spec_file))  # `file` resolves against the spec file's folder
    try:
        assert [x.score for x in grade(g, ["one two three", "four"], [{}, {}])] == [3.0, 1.0]
    finally:
        g.close()
    h1 = g.spec_hash
    assert load_grader(str(spec_file)).spec_hash == h1
    f.write_text(f.read_text() + "\n# edited\n")
    assert load_grader(str(spec_file)).spec_hash != h1  # the file's content counts, not its path
    import json

    spec = {**json.loads(spec_file.read_text()), "file": str(f)}  # a dict has no folder: absolute
    assert load_grader({**spec, "workers": 3}).spec_hash == load_grader(spec).spec_hash


def test_module_that_fails_to_load_fails_every_call_without_respawning():
    g = load_grader(
        {
            "type": "python",
            "name": "broken",
            "source": "import no_such_module_xyz\n\ndef grade(s, i):\n    return 1\n",
        }
    )
    try:
        out = grade(g, ["a", "b", "c"], [{}, {}, {}])
        assert all(x.score == 0.0 for x in out)
        assert all("ModuleNotFoundError" in x.error for x in out)
        assert out[0].error.startswith("the grader module did not load")
        assert all(w.starts <= 1 for w in g.pool._workers)  # a broken module is not retried
    finally:
        g.close()


def test_pool_survives_several_event_loops_and_close():
    g = load_grader({"type": "python", "source": "def grade(s, i):\n    return i['x'] * 2\n"})
    assert [x.score for x in grade(g, ["a"], [{"x": 1}])] == [2.0]
    assert [x.score for x in grade(g, ["a", "b"], [{"x": 2}, {"x": 3}])] == [4.0, 6.0]
    procs = [w.proc for w in g.pool._workers if w.proc is not None]
    assert procs and all(p.poll() is None for p in procs)
    g.close()
    assert all(p.poll() is not None for p in procs)


def test_workers_die_with_their_parent(tmp_path):
    """A parent killed by SIGKILL mid-call (as when a run is killed) leaves no spinning worker."""
    import os
    import signal
    import subprocess
    import sys

    pid_file = tmp_path / "worker.pid"
    (tmp_path / "spin.py").write_text(
        "import os\n\n"
        "def grade(sample, item):\n"
        f"    open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "    while True:\n"
        "        pass\n"
    )
    spec = {"type": "python", "file": str(tmp_path / "spin.py"), "timeout": 600, "workers": 1}
    script = tmp_path / "parent.py"
    script.write_text(
        "import asyncio\n"
        "from iro_blackbox.graders import load_grader\n"
        f"g = load_grader({spec!r})\n"
        "asyncio.run(g.grade(['x'], [{}]))\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)])
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline and parent.poll() is None
        time.sleep(0.1)
    worker = int(pid_file.read_text())
    os.kill(worker, 0)  # spinning
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(worker, signal.SIGKILL)
        raise AssertionError("the worker outlived its parent")


ENV_PROBE = """
import os

def grade(sample, item):
    name = item["name"]
    if name not in os.environ:
        return 0.0
    return 1.0 if "value" not in item or os.environ[name] == item["value"] else -1.0
"""


def test_workers_see_no_secret_of_the_run(monkeypatch):
    monkeypatch.setenv("IRO_TEST_SECRET_TOKEN", "s3cret-value")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-users-key-000000")
    monkeypatch.setenv("IRO_TEST_PASSED", "passed-through")
    plain = load_grader({"type": "python", "source": ENV_PROBE, "workers": 1})
    try:
        names = ["IRO_TEST_SECRET_TOKEN", "OPENAI_API_KEY", "PATH", "HOME"]
        out = grade(plain, ["x"] * len(names), [{"name": n} for n in names])
        assert [(x.score, x.error) for x in out] == [(0.0, None), (0.0, None), (1.0, None),
                                                     (1.0, None)]  # fmt: skip
    finally:
        plain.close()
    g = load_grader(
        {"type": "python", "source": ENV_PROBE, "workers": 1,
         "env": {"IRO_TEST_GIVEN": "a value", "IRO_TEST_PASSED": True}}
    )  # fmt: skip
    try:
        names = ["IRO_TEST_SECRET_TOKEN", "OPENAI_API_KEY", "PATH", "IRO_TEST_GIVEN",
                 "IRO_TEST_PASSED"]  # fmt: skip
        items = [{"name": n} for n in names]
        items[3]["value"], items[4]["value"] = "a value", "passed-through"
        out = grade(g, ["x"] * len(names), items)
        assert [x.error for x in out] == [None] * len(names)
        assert [x.score for x in out] == [0.0, 0.0, 1.0, 1.0, 1.0]
    finally:
        g.close()
    with pytest.raises(ConfigError, match="env.X must be a string"):
        load_grader({"type": "python", "source": ENV_PROBE, "env": {"X": 1}})


def test_a_load_timeout_is_tried_again(tmp_path):
    """The module's first load hangs past load_timeout (a busy machine); the next one loads."""
    mark = tmp_path / "first-load"
    source = (
        "import os, time\n"
        f"if not os.path.exists({str(mark)!r}):\n"
        f"    open({str(mark)!r}, 'w').close()\n"
        "    time.sleep(600)\n\n"
        "def grade(sample, item):\n"
        "    return 1.0\n"
    )
    g = load_grader({"type": "python", "source": source, "workers": 1, "timeout": 1,
                     "load_timeout": 2})  # fmt: skip
    try:
        out = grade(g, ["a", "b"], [{}, {}])
        assert [(x.score, x.error) for x in out] == [(1.0, None), (1.0, None)]
        assert g.pool.load_retries == 1 and g.pool.load_error is None
    finally:
        g.close()


def test_a_memory_limit_that_cannot_be_set_is_said(monkeypatch, caplog):
    import resource

    monkeypatch.delattr(resource, "RLIMIT_AS")  # as on a platform without it
    source = "def grade(s, i):\n    return 1.0\n"
    with pytest.raises(ConfigError, match="cannot limit the workers' memory.*null"):
        load_grader({"type": "python", "source": source, "memory_limit_mb": 512})
    with caplog.at_level("WARNING"):
        g = load_grader({"type": "python", "name": "nolimit", "source": source})
    assert g.config.memory_mb is None
    assert any("runs without a memory limit" in n for n in g.notes)
    assert "grader 'nolimit': runs without a memory limit" in caplog.text
    g.close()
