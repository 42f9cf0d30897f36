"""Engines for the two databases, and SQLite's connection settings.

SQLite runs on plain ``sqlite3`` connections (the ``Database`` threads use them
synchronously); PostgreSQL on asyncpg. ``sqlite+aiosqlite:///…`` URLs, which earlier
versions required, still work: only the path matters, the driver is always ``sqlite3``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

READ_ONLY = "xoev_read_only"
"""Execution option of a read transaction: on SQLite it begins deferred, not IMMEDIATE."""


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def private_sqlite_file(url: str | URL) -> None:
    """The database file holds every raw XML: create it 0600 before SQLite does (which
    would use the umask, typically 0644), and tighten an existing one. SQLite gives its
    -wal and -shm files the database file's permissions."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    except OSError:
        return  # unusable (no such directory, no permission): SQLite says so when opening
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists() and file.stat().st_mode & 0o077:
            file.chmod(0o600)


def sqlite_engine(
    url: str | URL, *, synchronous: str = "FULL", busy_seconds: float = 30.0, connections: int
) -> Engine:
    """``connections``: the pool size, one per thread that uses the engine."""
    private_sqlite_file(url)
    engine = create_engine(
        make_url(url).set(drivername="sqlite"),
        connect_args={"timeout": busy_seconds, "check_same_thread": False},
        pool_size=connections,
        max_overflow=0,
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite's own transaction handling is off; we BEGIN IMMEDIATE ourselves so
        # that writers queue on the lock (busy_timeout) instead of failing to upgrade.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute(f"PRAGMA busy_timeout={int(busy_seconds * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # Readers take no lock in WAL mode: a deferred BEGIN never waits for writers.
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def postgres_engine(url: str | URL) -> AsyncEngine:
    # Pre-ping replaces connections that died with a server restart; short connect/pool
    # timeouts make an outage a quick 503 instead of a hanging request.
    return create_async_engine(
        url,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
        pool_timeout=10,
        connect_args={"timeout": 5, "command_timeout": 60},
    )
