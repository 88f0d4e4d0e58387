"""Engines and migrations.

SQLite is the default (one file in the data directory, nothing to install); PostgreSQL (psycopg 3) is used
when the URL says so. The same code runs on both: the few dialect differences (``INSERT ... ON CONFLICT``,
table locks, how a write transaction starts) live here and in ``dialect_insert``.

SQLite is opened in WAL mode with a busy timeout and foreign keys on. Python's sqlite3 module starts
transactions lazily, which lets two writers both read and then collide when upgrading to a write lock
(``SQLITE_BUSY`` without waiting); so the driver's own transaction handling is turned off and we emit
``BEGIN`` ourselves: ``BEGIN IMMEDIATE`` for connections opened with ``write_connection()``, so a writer
takes the lock before it reads and waits its turn under the busy timeout.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from operator import itemgetter
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000


def default_data_dir() -> Path:
    """``$APTIC_CENTRAL_DATA``, else ``$XDG_DATA_HOME/aptic-central``, else ``~/.local/share/aptic-central``."""
    explicit = os.environ.get("APTIC_CENTRAL_DATA")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "aptic-central"


def ensure_data_dir(path: Path) -> Path:
    """Create the data directory (0700) on first run and return it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'central.db'}"


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see module docstring)
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get("aptic_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for ``url``; for a SQLite file, its directory is created first."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, pool_size=pool_size, max_overflow=20, pool_pre_ping=False)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":  # plain postgresql:// means psycopg 3 here
            url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        # No pre-ping: it would cost a round trip per request; recycle connections instead.
        return create_engine(url, pool_size=pool_size, max_overflow=20, pool_recycle=1800)
    raise ValueError(f"unsupported database URL (SQLite or PostgreSQL only): {parsed.render_as_string()}")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: on SQLite it takes the write lock up front (``BEGIN IMMEDIATE``)."""
    with engine.connect().execution_options(aptic_write=True) as conn, conn.begin():
        yield conn


def dialect_insert(conn: Connection, table: Table) -> Any:
    """``INSERT`` with ``ON CONFLICT`` support for the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_ignore_many(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> int:
    """Insert ``rows`` with ``ON CONFLICT DO NOTHING`` through the driver's ``executemany``; return how many
    were inserted (the others hit a unique key).

    This is the hot path of ingest. SQLAlchemy would render one multi-row ``VALUES`` statement per batch,
    which psycopg re-parses every time (thousands of placeholders, too long for its statement cache); the
    driver's ``executemany`` sends one short statement (pipelined on psycopg). Values go through each
    column type's own bind processor, so they are stored exactly as SQLAlchemy would store them.
    """
    if not rows:
        return 0
    columns = [c for c in table.columns if c.name in rows[0]]
    dialect = conn.dialect
    mark = "%s" if dialect.name == "postgresql" else "?"
    sql = (
        f"INSERT INTO {table.name} ({', '.join(c.name for c in columns)}) "
        f"VALUES ({', '.join([mark] * len(columns))}) ON CONFLICT DO NOTHING"
    )
    getter = itemgetter(*(c.name for c in columns))
    converters = [(i, proc) for i, c in enumerate(columns) if (proc := c.type._cached_bind_processor(dialect))]
    if not converters:
        params: list[Any] = [getter(row) for row in rows]
    else:
        params = []
        seen: dict[tuple[int, Any], Any] = {}  # a batch shares its receive time: convert each value once
        for row in rows:
            values = list(getter(row))
            for i, proc in converters:
                key = (i, values[i])
                if key not in seen:
                    seen[key] = proc(values[i])
                values[i] = seen[key]
            params.append(values)
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.executemany(sql, params)
        return int(cursor.rowcount)
    finally:
        cursor.close()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("central") / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the database to the latest schema (Alembic ``upgrade head``), on the given engine."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    log.debug("database schema at head (%s)", engine.url.get_backend_name())


def utc(value: datetime | None) -> datetime | None:
    """A stored timestamp as an aware UTC datetime (SQLite hands back naive UTC values)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
