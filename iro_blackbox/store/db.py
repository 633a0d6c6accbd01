"""Opening the store: engine, SQLite pragmas, sessions; migrations.py brings the schema up to date.

    store = open_store("sqlite:///iro-runs/iro.db")   # or a path, or IRO_DB, or postgresql://...
    with store.session() as s: ...

A database made by a newer iro-bb, or by something else entirely, is refused with a clear message.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import StoreError
from .migrations import migrate
from .schema import Meta

DEFAULT_HOME = "iro-runs"


def default_home() -> Path:
    """Folder for the default database and run folders (IRO_HOME, else ./iro-runs)."""
    return Path(os.environ.get("IRO_HOME", DEFAULT_HOME))


def resolve_db_url(db: str | None = None) -> str:
    """--db / IRO_DB take any SQLAlchemy URL or a plain file path; default iro-runs/iro.db."""
    db = db or os.environ.get("IRO_DB")
    if not db:
        db = str(default_home() / "iro.db")
    for plain in ("postgresql://", "postgres://"):  # psycopg 3, not SQLAlchemy's psycopg2 default
        if db.startswith(plain):
            return "postgresql+psycopg://" + db[len(plain) :]
    if "://" in db:
        return db
    return f"sqlite:///{Path(db).expanduser()}"


def explain(display_url: str, e: BaseException) -> str:
    """One line saying why the database at `display_url` cannot be used, and what to do."""
    orig = getattr(e, "orig", None) or e
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    where = f"database {display_url}"
    low = str(orig).lower()
    if isinstance(e, NoSuchModuleError) or "can't load plugin" in low:
        return (
            f"cannot open {where}: no driver for that URL scheme; use sqlite:///FILE or "
            "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB"
        )
    if isinstance(e, ImportError):
        return f"cannot open {where}: {first} (pip install 'psycopg[binary]' for PostgreSQL)"
    if "connection refused" in low or "could not translate host" in low or "timeout" in low:
        return (
            f"cannot connect to {where}: {first.split(': ')[-1]}; is the server running and "
            "listening there?"
        )
    if "password authentication failed" in low or ("role" in low and "does not exist" in low):
        return (
            f"cannot log in to {where}: {first.split('FATAL:  ')[-1]}; check the user and password"
        )
    if "database" in low and "does not exist" in low:
        return f"cannot open {where}: {first.split('FATAL:  ')[-1]}; create it (createdb) or fix the name"
    return f"cannot open {where}: {first}"


def _redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


class Store:
    """A handle on one database. Cheap to share; sessions are short-lived."""

    def __init__(self, url: str, engine: Engine):
        self.url = url
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def display_url(self) -> str:
        return _redact(self.url)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        s = self._sessions()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    def schema_version(self) -> int:
        with self.session() as s:
            row = s.get(Meta, "schema_version")
            return int(row.value) if row else 0

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def open_store(db: str | None = None) -> Store:
    """Open (creating or migrating) the store at `db` (URL or path; default IRO_DB / iro-runs)."""
    url = resolve_db_url(db)
    try:
        engine = make_engine(url)
    except (SQLAlchemyError, ImportError, ValueError, OSError) as e:
        raise StoreError(explain(_redact(url), e)) from None
    store = Store(url, engine)
    try:
        migrate(engine, store.display_url)
    except (SQLAlchemyError, ImportError) as e:
        engine.dispose()
        raise StoreError(explain(store.display_url, e)) from None
    return store
