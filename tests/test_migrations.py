"""Stores made by the previous release migrate: tests/data/store_v1.sql is the SQL dump of a store
iro-bb 0.1.0 wrote (a 2-iteration align, a `generate` run and a queued job, made with that
release's own code), loaded into a real SQLite file, and into a real PostgreSQL database (the same
tables in PostgreSQL's types, the same rows), and opened with today's code."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from iro_blackbox.iro.config import AlignConfig
from iro_blackbox.store import SCHEMA_VERSION, JobQueue, Rollout, RunRepository, open_store

V1_DUMP = Path(__file__).parent / "data" / "store_v1.sql"


@pytest.fixture(params=["sqlite", "postgresql"])
def v1_db(request, tmp_path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "v1.db"
        con = sqlite3.connect(path)
        con.executescript(V1_DUMP.read_text())
        con.close()
        return str(path)
    url = request.getfixturevalue("pg_url")
    load_v1_into_postgresql(url)
    return url


def load_v1_into_postgresql(url: str) -> None:
    """The v1 dump's tables, as iro-bb 0.1.0 created them on PostgreSQL (SERIAL ids, TIMESTAMP),
    and its rows, through an in-memory SQLite copy."""
    import json
    import re
    from datetime import datetime

    from sqlalchemy import JSON, Boolean, DateTime, MetaData, create_engine, text

    from iro_blackbox.store.db import resolve_db_url

    lite = sqlite3.connect(":memory:")
    lite.executescript(V1_DUMP.read_text())
    ddl = [r[0] for r in lite.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL "
                                      "ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END, rowid")]  # fmt: skip
    engine = create_engine(resolve_db_url(url))
    with engine.begin() as con:
        for stmt in ddl:
            stmt = stmt.replace("DATETIME", "TIMESTAMP")
            if "PRIMARY KEY (id)" in stmt:
                stmt = re.sub(r"\bid INTEGER NOT NULL", "id SERIAL NOT NULL", stmt)
            con.execute(text(stmt))
    meta = MetaData()
    meta.reflect(engine)
    tables = [r[0] for r in lite.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                         "ORDER BY rowid")]  # fmt: skip
    with engine.begin() as con:
        for name in tables:
            table = meta.tables[name]
            cur = lite.execute(f"SELECT * FROM {name}")
            cols = [d[0] for d in cur.description]
            rows = []
            for values in cur.fetchall():
                row = {}
                for c, v in zip(cols, values, strict=True):
                    kind = table.c[c].type
                    if v is not None and isinstance(kind, Boolean):
                        v = bool(v)
                    elif isinstance(v, str) and isinstance(kind, JSON):
                        v = json.loads(v)
                    elif isinstance(v, str) and isinstance(kind, DateTime):
                        v = datetime.fromisoformat(v)
                    row[c] = v
                rows.append(row)
            if rows:
                con.execute(table.insert(), rows)
            if "id" in table.c and rows:
                con.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                                 f"(SELECT max(id) FROM {name}))"))  # fmt: skip
    engine.dispose()


def _sql(db: str, query: str) -> list[tuple]:
    from _fx_pg import sql_rows

    return sql_rows(db, query)


def test_v1_store_migrates_to_the_current_schema(v1_db):
    before = _sql(v1_db, "SELECT t, phase, method, example_id, idx, response, reward FROM rollouts")
    assert _sql(v1_db, "SELECT value FROM iro_meta WHERE key = 'schema_version'") == [("1",)]
    store = open_store(v1_db)
    assert store.schema_version() == SCHEMA_VERSION == 3
    assert _sql(v1_db, "SELECT version FROM iro_migrations ORDER BY version") == [(1,), (2,), (3,)]

    # method names say which search ran; the idx offset became the `search` column
    after = _sql(
        v1_db, "SELECT t, phase, method, example_id, search, idx, response, reward FROM rollouts"
    )
    methods = {(t, ph, m) for t, ph, m, *_ in after}
    assert methods == {
        (0, "eval", "best_of_n"),
        (1, "train", "sample"),
        (1, "eval", "cbs"),
        (2, "train", "cbs"),
        (2, "eval", "cbs"),
    }
    assert max(idx for *_, idx, _, _ in after) < 100_000
    assert {s for _, ph, _, _, s, *_ in after if ph == "train"} == {0, 1}
    old = sorted(
        (t, ph, ex, idx // 100_000, idx % 100_000, resp, rew)
        for t, ph, m, ex, idx, resp, rew in before
        if ph != "generate"
    )
    new = sorted((t, ph, ex, s, idx, resp, rew) for t, ph, m, ex, s, idx, resp, rew in after)
    assert new == old  # every rollout kept, nothing else changed

    # generated answers left the examples table for their own
    assert _sql(v1_db, "SELECT count(*) FROM examples WHERE split NOT IN ('train', 'eval')") == [
        (0,)
    ]
    repo = RunRepository(store)
    run = repo.find("v1run")
    gens = repo.generations(run.id, "a5a84d8e")
    old_gen = [r for r in before if r[1] == "generate"]
    assert set(gens) == {"line-1", "x2"} and len(old_gen) == 2
    assert {g.response for g in gens.values()} == {r[5] for r in before if r[1] == "generate"}
    assert gens["x2"].data == {"id": "x2", "prompt": "Tell me about cats."}

    # the run reads as a run of today: its config, iterations, value models, jobs
    cfg = AlignConfig.from_dict(run.config)
    assert run.spent == {}  # schema 3: nothing recorded as paid before budgets existed
    assert cfg.run.iterations == 2 and cfg.search.w == 2
    assert [i["stage"] for i in repo.iterations(run.id)] == ["done", "done", "done"]
    assert [r.t for r in repo.value_models(run.id)] == [1, 2]
    assert JobQueue(store).get(1)["kind"] == "generate"

    # the new unique key holds: the same (search, idx) twice is refused
    row = repo.rollouts(run.id, 2, "train", "cbs")[0]
    with pytest.raises(IntegrityError), store.session() as s:
        s.add(
            Rollout(
                run_id=run.id,
                t=2,
                phase="train",
                method="cbs",
                example_id=row.example_id,
                search=row.search,
                idx=row.idx,
                prompt="p",
                response="r",
            )  # fmt: skip
        )
    store.close()
    reopened = open_store(v1_db)  # migrating again is a no-op
    assert reopened.schema_version() == 3
    reopened.close()


def test_migrated_run_shows_in_the_cli(v1_db, capsys):
    from iro_blackbox.cli.app import main

    assert main(["runs", "show", "v1run", "--db", v1_db]) == 0
    out = capsys.readouterr().out
    assert "pi_2" in out and "v1run" in out
