"""The store on a real SQLite file and a real PostgreSQL database: create, write, reopen, read;
schema version checks; clear one-line errors for a database that cannot be used."""

from __future__ import annotations

import sqlite3

import pytest
from _fx_pg import sql_rows
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


def test_rows_survive_reopen(db_url):
    st = open_store(db_url)
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

    st2 = open_store(db_url)
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


def execute(db: str, sql: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(resolve_db_url(db))
    with engine.begin() as con:
        con.execute(text(sql))
    engine.dispose()


def test_newer_schema_refused(db_url):
    open_store(db_url).close()
    execute(db_url, f"UPDATE iro_meta SET value='{SCHEMA_VERSION + 1}' WHERE key='schema_version'")
    with pytest.raises(StoreError, match="newer than this iro-bb understands"):
        open_store(db_url)


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


def test_foreign_app_refused(db_url):
    open_store(db_url).close()
    execute(db_url, "UPDATE iro_meta SET value='something-else' WHERE key='app'")
    with pytest.raises(StoreError, match="belongs to 'something-else'"):
        open_store(db_url)


def test_foreign_postgresql_database_refused_untouched(pg_url):
    execute(pg_url, "CREATE TABLE customers (id SERIAL PRIMARY KEY, name TEXT)")
    with pytest.raises(StoreError, match="not made by iro-bb"):
        open_store(pg_url)
    assert sql_rows(pg_url, "SELECT tablename FROM pg_tables WHERE schemaname='public'") == [
        ("customers",)
    ]


def test_postgresql_bad_targets_are_one_clear_line(pg_server):
    from _fx_llama import free_port

    host = pg_server.url.rsplit("@", 1)[1]
    cases = [
        (f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x", "cannot connect"),
        (f"postgresql+psycopg://nobody:pw@{host}/postgres", 'role "nobody" does not exist'),
        (f"{pg_server.url}/no_such_db", 'database "no_such_db" does not exist'),
        ("postgresql+nodriver://u@127.0.0.1/x", "no driver"),
    ]
    for url, needle in cases:
        with pytest.raises(StoreError) as e:
            open_store(url)
        msg = str(e.value)
        assert needle in msg and "\n" not in msg and "Traceback" not in msg, msg
        assert "pw" not in msg  # the password is never shown


def test_db_url_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("IRO_DB", raising=False)
    monkeypatch.setenv("IRO_HOME", str(tmp_path / "h"))
    assert resolve_db_url() == f"sqlite:///{tmp_path / 'h' / 'iro.db'}"
    assert resolve_db_url("x.db") == "sqlite:///x.db"
    monkeypatch.setenv("IRO_DB", "postgresql://u:p@host/db")
    assert resolve_db_url() == "postgresql+psycopg://u:p@host/db"  # psycopg 3, the driver we ship
    assert resolve_db_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"


def test_request_cache_roundtrip(any_store):
    store = any_store
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


def test_grade_cache(any_store):
    gc = GradeCacheStore(any_store)
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
