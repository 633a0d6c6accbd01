"""Numbered schema migrations, and the check that a database is iro-bb's and not from the future.

A new database is created at the current schema and stamped with every version. An existing one
gets the migrations above its recorded version, in order, each in its own transaction, recorded
in `iro_migrations`. Append only: never edit a migration that has shipped.

    1  initial schema (iro-bb 0.1)
    2  rollouts.search replaces the idx offset of 100000 per guided search; method names say which
       search ran ("sample" for the base evaluation -> "best_of_n", "iro" -> "cbs"); generated
       answers move from examples/rollouts (ids "gen:<batch>:<id>", split "generate") to their
       own table `generations`
    3  runs.spent (what a run has paid so far, for budgets); table `probes` (what an endpoint was
       found to do)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection, Engine, inspect, select, text

from ..errors import StoreError
from .schema import Base, Generation, Meta, Migration, Probe, Rollout

APP_NAME = "iro-bb"
V1_SEARCH_STRIDE = 100_000  # schema 1 stored guided search r's candidates at idx r*100000 + i


def _m1_initial(conn: Connection) -> None:
    """Databases of schema 1 were made by iro-bb 0.1 itself; nothing to do."""


def _m2_search_methods_generations(conn: Connection) -> None:
    Base.metadata.create_all(conn, tables=[Generation.__table__])
    # generated answers: example rows "gen:<batch>:<ex id>" (split generate) + their rollout
    gens = conn.execute(
        text(
            "SELECT e.id, e.run_id, e.ex_id, e.data, r.response, r.finish_reason, r.score, "
            "r.reward, r.completion_tokens, r.usage, r.created_at FROM examples e "
            "JOIN rollouts r ON r.example_id = e.id AND r.phase = 'generate' "
            "WHERE e.split = 'generate'"
        )
    ).all()
    table = Generation.__table__
    for row in gens:
        _, batch, ex_id = row.ex_id.split(":", 2)
        conn.execute(
            table.insert().values(
                run_id=row.run_id,
                batch=batch,
                ex_id=ex_id,
                data=_json(row.data),
                response=row.response,
                finish_reason=row.finish_reason,
                score=row.score,
                reward=row.reward,
                completion_tokens=row.completion_tokens or 0,
                usage=_json(row.usage) or {},
                created_at=_when(row.created_at),
            )
        )
    conn.execute(text("DELETE FROM rollouts WHERE phase = 'generate'"))
    conn.execute(text("DELETE FROM examples WHERE split = 'generate'"))

    # rollouts: a `search` column in the unique key instead of the idx offset; method names
    cols = (
        "id, run_id, t, phase, method, example_id, idx, prompt, response, reward, grade_error, "
        "score, selected, weight, finish_reason, prompt_tokens, completion_tokens, usage, "
        "created_at"
    )
    new_method = (
        "CASE WHEN phase = 'eval' AND method = 'sample' THEN 'best_of_n' "
        "WHEN method = 'iro' THEN 'cbs' ELSE method END"
    )
    s = V1_SEARCH_STRIDE
    if conn.dialect.name == "sqlite":  # SQLite cannot change a table's constraints: rebuild it
        conn.execute(text("DROP INDEX IF EXISTS ix_rollouts_run_id"))
        conn.execute(text("ALTER TABLE rollouts RENAME TO rollouts_v1"))
        Base.metadata.create_all(conn, tables=[Rollout.__table__])
        picked = cols.replace("method,", f"{new_method},").replace("idx,", f"idx % {s}, idx / {s},")
        conn.execute(
            text(
                f"INSERT INTO rollouts ({cols.replace('idx,', 'idx, search,')}) "
                f"SELECT {picked} FROM rollouts_v1"
            )
        )
        conn.execute(text("DROP TABLE rollouts_v1"))
        return
    conn.execute(text("ALTER TABLE rollouts ADD COLUMN search INTEGER NOT NULL DEFAULT 0"))
    for uc in inspect(conn).get_unique_constraints("rollouts"):
        conn.execute(text(f'ALTER TABLE rollouts DROP CONSTRAINT "{uc["name"]}"'))
    conn.execute(
        text(f"UPDATE rollouts SET method = {new_method}, search = idx / {s}, idx = idx % {s}")
    )
    conn.execute(
        text(
            "ALTER TABLE rollouts ADD CONSTRAINT rollouts_run_t_phase_method_example_search_idx "
            "UNIQUE (run_id, t, phase, method, example_id, search, idx)"
        )
    )


def _m3_spent_probes(conn: Connection) -> None:
    Base.metadata.create_all(conn, tables=[Probe.__table__])
    conn.execute(text("ALTER TABLE runs ADD COLUMN spent JSON"))
    conn.execute(text("UPDATE runs SET spent = '{}'"))


def _json(value: object) -> object:
    """A JSON column read through a text() query: SQLite gives the text, other drivers the value."""
    return json.loads(value) if isinstance(value, str) else value


def _when(value: object) -> datetime | None:
    """A DateTime column read through a text() query (SQLite gives ISO text)."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value  # type: ignore[return-value]


# (version, name, function(connection)): append only
MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "initial schema", _m1_initial),
    (2, "rollouts.search, search method names, generations table", _m2_search_methods_generations),
    (3, "runs.spent, probes table", _m3_spent_probes),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def migrate(engine: Engine, display_url: str) -> None:
    """Create or upgrade the database behind `engine` (StoreError if it is not iro-bb's)."""
    tables = set(inspect(engine).get_table_names())  # connection errors: open_store explains
    if not tables:
        with engine.begin() as conn:
            Base.metadata.create_all(conn)
            _stamp(conn, [(v, n) for v, n, _ in MIGRATIONS])
        return
    if "iro_meta" not in tables:
        raise StoreError(
            f"database {display_url} was not made by iro-bb (it has tables "
            f"{', '.join(sorted(tables)[:5])} but no iro_meta): refusing to touch it; "
            "point --db / IRO_DB at another file"
        )
    with engine.connect() as conn:
        meta = {m.key: m.value for m in conn.execute(select(Meta.key, Meta.value))}
    if meta.get("app") != APP_NAME:
        raise StoreError(
            f"database {display_url} belongs to '{meta.get('app', 'unknown')}', not iro-bb: "
            "refusing to touch it"
        )
    current = int(meta.get("schema_version", 0))
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"database {display_url} has schema version {current}, newer than this iro-bb "
            f"understands ({SCHEMA_VERSION}): upgrade iro-bb (pip install -U iro-bb)"
        )
    for version, name, fn in MIGRATIONS:
        if version > current:
            with engine.begin() as conn:
                fn(conn)
                _stamp(conn, [(version, name)])


def _stamp(conn: Connection, versions: list[tuple[int, str]]) -> None:
    meta = Meta.__table__
    done = set(conn.scalars(select(Migration.version)))
    for version, name in versions:
        if version not in done:
            conn.execute(Migration.__table__.insert().values(version=version, name=name))
    newest = max(v for v, _ in versions)
    for key, value in (("app", APP_NAME), ("schema_version", str(newest))):
        if conn.execute(select(Meta.key).where(Meta.key == key)).first() is None:
            conn.execute(meta.insert().values(key=key, value=value))
        else:
            conn.execute(meta.update().where(Meta.key == key).values(value=value))
