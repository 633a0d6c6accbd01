"""The store on a real SQLite file: create, write, reopen, read; schema version checks."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import select

from iro_blackbox.errors import StoreError
from iro_blackbox.store import (
    SCHEMA_VERSION,
    Example,
    GradeCacheStore,
    Iteration,
    RequestCacheStore,
    Rollout,
    Run,
    open_store,
    resolve_db_url,
)


def test_rows_survive_reopen(tmp_path):
    path = tmp_path / "runs.db"
    st = open_store(str(path))
    with st.session() as s:
        run = Run(name="r1", config={"model": "m", "w": 4})
        s.add(run)
        s.flush()
        ex = Example(run_id=run.id, ex_id="a", split="train", data={"prompt": "hi"})
        s.add(ex)
        s.flush()
        s.add(Iteration(run_id=run.id, t=1, stage="done", metrics={"eval_mean_reward": 0.5}))
        s.add(
            Rollout(
                run_id=run.id,
                t=1,
                phase="train",
                method="sample",
                example_id=ex.id,
                idx=0,
                prompt="hi",
                response="hello",
                reward=0.25,
                selected=True,
                completion_tokens=3,
            )
        )
    st.close()
    assert path.is_file() and path.stat().st_size > 0

    st2 = open_store(str(path))
    with st2.session() as s:
        run = s.scalar(select(Run).where(Run.name == "r1"))
        assert run.config == {"model": "m", "w": 4}
        ro = s.scalar(select(Rollout).where(Rollout.run_id == run.id))
        assert (ro.response, ro.reward, ro.selected, ro.completion_tokens) == (
            "hello",
            0.25,
            True,
            3,
        )
        it = s.scalar(select(Iteration).where(Iteration.run_id == run.id))
        assert it.metrics["eval_mean_reward"] == 0.5
    assert st2.schema_version() == SCHEMA_VERSION


def test_sqlite_pragmas(store):
    with store.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar().lower() == "wal"
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000


def test_newer_schema_refused(tmp_path):
    path = tmp_path / "new.db"
    open_store(str(path)).close()
    con = sqlite3.connect(path)
    con.execute(
        "UPDATE iro_meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),)
    )
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="newer than this iro-bb understands"):
        open_store(str(path))


def test_foreign_database_refused(tmp_path):
    path = tmp_path / "foreign.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not made by iro-bb"):
        open_store(str(path))
    # untouched
    con = sqlite3.connect(path)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"customers"}


def test_foreign_app_refused(tmp_path):
    path = tmp_path / "other.db"
    open_store(str(path)).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE iro_meta SET value='something-else' WHERE key='app'")
    con.commit()
    with pytest.raises(StoreError, match="belongs to 'something-else'"):
        open_store(str(path))


def test_db_url_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("IRO_DB", raising=False)
    monkeypatch.setenv("IRO_HOME", str(tmp_path / "h"))
    assert resolve_db_url() == f"sqlite:///{tmp_path / 'h' / 'iro.db'}"
    assert resolve_db_url("x.db") == "sqlite:///x.db"
    monkeypatch.setenv("IRO_DB", "postgresql://u:p@host/db")
    assert resolve_db_url() == "postgresql://u:p@host/db"


def test_request_cache_roundtrip(store):
    rc = RequestCacheStore(store)
    req = {"model": "m", "prompt": "p", "sample_index": 3}
    key = rc.key(req)
    assert key == rc.key(dict(reversed(list(req.items()))))  # canonical: order does not matter
    assert rc.get(key) is None
    rc.put(key, "openai", req, {"text": "out"})
    rc.put(key, "openai", req, {"text": "other"})  # insert-or-ignore
    assert rc.get(key) == {"text": "out"}
    st = rc.stats()
    assert st["entries"] == 1 and st["hits"] == 1
    assert RequestCacheStore(store, enabled=False).get(key) is None
    assert rc.clear() == 1 and rc.get(key) is None


def test_grade_cache(store):
    gc = GradeCacheStore(store)
    k = gc.key("g1", {"id": 1}, "text")
    assert gc.get(k) is None
    gc.put(k, "g1", 0.7)
    gc.put(gc.key("g1", {"id": 2}, "t"), "g1", None, error="boom")
    assert gc.get(k) == (0.7, None)
    many = gc.get_many([k, gc.key("g1", {"id": 2}, "t"), "missing"])
    assert many[k] == (0.7, None) and len(many) == 2


def test_unreachable_database_is_clear(tmp_path):
    bad = tmp_path / "file-not-dir"
    bad.write_text("x")
    with pytest.raises(StoreError, match="cannot open database"):
        open_store(f"sqlite:///{bad}/sub/x.db")
