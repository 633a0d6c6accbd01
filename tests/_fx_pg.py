"""A real PostgreSQL 15 server for the session (Debian's binaries, a temporary data folder), and
fixtures that give each test a fresh database on it, or on SQLite, as a parameter.

initdb refuses to run as root, so the server runs as the `postgres` user (runuser) with trust
auth, listening on 127.0.0.1 only, on a free port, its socket in the data folder. Starting it takes
about a second; it is stopped when the session ends. Set IRO_TEST_PG_URL to use a server of your
own instead (a URL whose user may CREATE DATABASE).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from _fx_llama import free_port

PG_BIN = Path(os.environ.get("IRO_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


@dataclass
class PgServer:
    url: str  # postgresql+psycopg://user@host:port (no database)
    data: Path | None = None

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.plain("postgres"), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return f"{self.url}/{name}"

    def plain(self, db: str) -> str:
        """The libpq form of the URL for database `db` (psycopg.connect takes it)."""
        return self.url.replace("postgresql+psycopg://", "postgresql://") + "/" + db


def _as_postgres(*cmd: str) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return list(cmd)


def start_postgres() -> PgServer:
    if not (PG_BIN / "initdb").is_file():
        pytest.fail(
            f"PostgreSQL binaries not found in {PG_BIN}: install Debian's postgresql package "
            "(or set IRO_TEST_PG_BIN, or IRO_TEST_PG_URL to a server of your own)"
        )
    data = Path(tempfile.mkdtemp(prefix="iro-pg-"))
    os.chmod(data, 0o700)
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    run = dict(check=True, capture_output=True, text=True, timeout=120)
    subprocess.run(
        _as_postgres(
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ),  # fmt: skip
        **run,
    )
    port = free_port()
    opts = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(
        _as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            opts,
            "-l",
            str(data / "server.log"),
            "-w",
            "start",
        ),  # fmt: skip
        **run,
    )
    return PgServer(f"postgresql+psycopg://postgres@127.0.0.1:{port}", data)


def stop_postgres(server: PgServer) -> None:
    if server.data is None:
        return
    subprocess.run(
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(server.data), "-m", "immediate", "stop"),
        capture_output=True,
        timeout=60,
    )
    shutil.rmtree(server.data, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server():
    if os.environ.get("IRO_TEST_PG_URL"):
        yield PgServer(os.environ["IRO_TEST_PG_URL"].rstrip("/"))
        return
    server = start_postgres()
    try:
        yield server
    finally:
        stop_postgres(server)


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return pg_server.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """A fresh database URL: a SQLite file, then a PostgreSQL database (the test runs twice)."""
    if request.param == "sqlite":
        return str(tmp_path / "test.db")
    return request.getfixturevalue("pg_server").create_database()


@pytest.fixture
def any_store(db_url):
    """A real store on SQLite, then on PostgreSQL."""
    from iro_blackbox.store import open_store

    st = open_store(db_url)
    yield st
    st.close()


def sql_rows(db: str, sql: str) -> list[tuple]:
    """Rows of a raw SQL query on either database (a missing table gives [])."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    from iro_blackbox.store.db import resolve_db_url

    engine = create_engine(resolve_db_url(db))
    try:
        with engine.connect() as con:
            return [tuple(r) for r in con.execute(text(sql))]
    except SQLAlchemyError:
        return []
    finally:
        engine.dispose()


__all__ = ["any_store", "db_url", "pg_server", "pg_url", "PgServer", "sql_rows"]
