"""``Database``: runs store operations, each given as one synchronous function of a connection.

SQLite: writes in one dedicated thread, reads in a few others, all on synchronous
connections, so that a whole operation is a single hand-off between threads. With
aiosqlite every statement was ~4 hand-offs through its thread and the event loop: a
delivery's job read took 12 of them, and while the loop was busy with requests the write
lock stayed held between statements (figures in docs/performance.md). The one writer
thread also is SQLite's one writer: this process's writes queue in it.

PostgreSQL: the same functions through ``run_sync`` on the async engine (asyncpg,
greenlets), a pooled connection per operation; no single writer there.

The runtime builds one ``Database`` per process and passes it to the store, the embedded
queue and the outbox relay.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import InsufficientStorage, Unavailable
from gateway.store.disk import SqliteFileWatch
from gateway.store.engines import READ_ONLY, is_sqlite, postgres_engine, sqlite_engine
from gateway.store.group_commit import GroupCommit

log = logging.getLogger("xoev_gateway.store")

T = TypeVar("T")
R = TypeVar("R")

UNAVAILABLE_ERRORS = (OperationalError, DBAPIError, OSError, ConnectionError)
"""What a lost or refused database connection raises (``IntegrityError`` aside)."""


POSTGRES_DISK_FULL = "53100"
"""SQLSTATE disk_full."""


def disk_full(exc: BaseException) -> InsufficientStorage | None:
    """The 507 for a database write that found no space (SQLite's SQLITE_FULL, PostgreSQL's
    disk_full), so that callers never see it as a generic outage; else ``None``."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    full = (
        isinstance(orig, sqlite3.Error)
        and getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    ) or getattr(orig, "sqlstate", None) == POSTGRES_DISK_FULL
    if not full:
        return None
    return InsufficientStorage("the database has no space left to store this; retry later")


@contextmanager
def unavailable_on_failure(what: str) -> Iterator[None]:
    """Map a lost or refused database connection to ``Unavailable`` (HTTP 503)."""
    try:
        yield
    except IntegrityError:
        raise
    except UNAVAILABLE_ERRORS as exc:
        raise Unavailable(f"{what} unavailable: {type(exc).__name__}") from None


class _WriterThread:
    """SQLite's one writer: runs functions one at a time, urgent ones first.

    Accepts are urgent: a client waits for each. Delivery outcomes, settlements and claims
    can wait one transaction longer. There is at most one accept batch queued at a time
    (the group commit starts the next when the last has committed), so the rest never
    starves.
    """

    def __init__(self) -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, Callable[[], Any] | None, Future[Any]]]
        self._queue = queue.PriorityQueue()
        self._order = itertools.count()
        self._thread = threading.Thread(target=self._run, name="sqlite-writer", daemon=True)
        self._thread.start()

    def submit(self, function: Callable[[], T], *, urgent: bool) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((0 if urgent else 1, next(self._order), function, future))
        return future

    def shutdown(self) -> None:
        """Runs what is queued, then stops."""
        self._queue.put((2, next(self._order), None, Future()))
        self._thread.join()

    def _run(self) -> None:
        while True:
            _, _, function, future = self._queue.get()
            if function is None:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function())
            except BaseException as exc:  # handed to the awaiting caller
                future.set_exception(exc)


class Database:
    """One process's access to the database; see the module docstring.

    Every operation's errors are the driver's (through SQLAlchemy): callers map them with
    :func:`unavailable_on_failure` or handle ``IntegrityError`` themselves.
    """

    READERS = 4

    def __init__(self, engine: Engine | AsyncEngine) -> None:
        self.dialect = engine.dialect.name
        self._async_engine: AsyncEngine | None = None
        self._sync_engine: Engine | None = None
        self._writer: _WriterThread | None = None
        self._readers: ThreadPoolExecutor | None = None
        if isinstance(engine, AsyncEngine):
            self._async_engine = engine
        else:
            self._sync_engine = engine
            self._writer = _WriterThread()
            self._readers = ThreadPoolExecutor(self.READERS, thread_name_prefix="sqlite-reader")
        self._shared: GroupCommit[Callable[[Connection], None], None] = GroupCommit(
            self._commit_shared
        )
        file = engine.url.database if self._sync_engine is not None else None
        self._watch = (
            SqliteFileWatch(Path(file).resolve())
            if file and file != ":memory:" and not file.startswith("file:")
            else None
        )

    @classmethod
    def open(
        cls, url: str, *, sqlite_synchronous: str = "FULL", sqlite_busy_seconds: float = 30.0
    ) -> Database:
        """SQLite (``sqlite:///path``; ``sqlite+aiosqlite:///path`` is read the same) or
        PostgreSQL (``postgresql+asyncpg://…``). Nothing connects until the first use."""
        if is_sqlite(url):
            return cls(
                sqlite_engine(
                    url,
                    synchronous=sqlite_synchronous,
                    busy_seconds=sqlite_busy_seconds,
                    connections=1 + cls.READERS,
                )
            )
        return cls(postgres_engine(url))

    @property
    def path(self) -> Path | None:
        """The SQLite file (None on PostgreSQL)."""
        return self._watch.path if self._watch is not None else None

    async def write(self, body: Callable[[Connection], T], *, urgent: bool = False) -> T:
        """``body`` in a write transaction (SQLite: BEGIN IMMEDIATE); ``urgent``: ahead of
        the queued non-urgent writes of this process (a client is waiting)."""
        if self._async_engine is not None:
            try:
                async with self._async_engine.begin() as conn:
                    return await conn.run_sync(body)
            except DBAPIError as exc:
                full = disk_full(exc)
                if full is None:
                    raise
                raise full from exc
        if self._writer is None:
            raise Unavailable("store closed")
        future = self._writer.submit(partial(self._transaction, body, False), urgent=urgent)
        return await asyncio.wrap_future(future)

    async def read(self, body: Callable[[Connection], T]) -> T:
        """``body`` in a read transaction (SQLite: deferred, never waits for writers)."""
        if self._async_engine is not None:
            async with self._async_engine.connect() as conn:
                return await conn.run_sync(body)
        if self._readers is None:
            raise Unavailable("store closed")
        return await asyncio.get_running_loop().run_in_executor(
            self._readers, self._transaction, body, True
        )

    async def write_shared(self, fragment: Callable[[Connection], None]) -> None:
        """``fragment`` in the next shared write transaction (group commit): the outcome
        records and queue settlements of concurrent deliveries share one commit, so a
        delivery's two writes do not cost two transactions of their own."""
        await self._shared.submit(fragment)

    async def write_awaiting(
        self,
        before: Callable[[Connection], R],
        action: Callable[[R], Awaitable[None]],
        after: Callable[[Connection, R], None],
    ) -> R:
        """``before``, then await ``action`` with its result, then ``after``: all in one
        write transaction, which rolls back if ``action`` raises. The outbox relay holds
        the rows it locked while the broker confirms them. On SQLite the writer thread
        (and with it the write lock) waits for ``action``, as any writer holding the lock
        would; so ``action`` must not use this database, and should have a timeout of its
        own (the broker's confirm timeout)."""
        if self._async_engine is not None:
            async with self._async_engine.begin() as conn:
                result = await conn.run_sync(before)
                await action(result)
                await conn.run_sync(after, result)
                return result
        loop = asyncio.get_running_loop()

        def body(conn: Connection) -> R:
            result = before(conn)

            async def run_action() -> None:
                await action(result)

            asyncio.run_coroutine_threadsafe(run_action(), loop).result()
            after(conn, result)
            return result

        return await self.write(body)

    async def _commit_shared(self, fragments: Sequence[Callable[[Connection], None]]) -> list[None]:
        def body(conn: Connection) -> None:
            for fragment in fragments:
                fragment(conn)

        await self.write(body)
        return [None] * len(fragments)

    def _transaction(self, body: Callable[[Connection], T], read_only: bool) -> T:
        assert self._sync_engine is not None
        watch = self._watch
        if watch is not None:
            # Before connecting: a new pooled connection would create an empty file.
            self._check_file(watch)
        try:
            with self._sync_engine.connect() as conn:
                if watch is not None:
                    watch.remember()
                if read_only:
                    conn.execution_options(**{READ_ONLY: True})
                with conn.begin():
                    result = body(conn)
        except DBAPIError as exc:
            full = disk_full(exc)
            if full is None:
                raise
            raise full from exc
        if watch is not None and not read_only:
            # After the commit too: a commit that may have gone into a file deleted
            # meanwhile must not be reported as durable (the API would answer 202).
            self._check_file(watch)
        return result

    def _check_file(self, watch: SqliteFileWatch) -> None:
        error, first = watch.lost()
        if error is None:
            return
        if first:
            saved = self._save_open_file(watch.path)
            log.error(
                "%s. Everything committed until now is in the file this process still has "
                "open; %s. Stop the gateway, put a database file in place (that copy, or "
                "restore from backup) and start it again; until then every submission gets "
                "503 and /readyz is not ready.",
                error.detail,
                f"a copy of it is saved at {saved}"
                if saved is not None
                else "saving a copy of it failed (see above): copy "
                f"/proc/{os.getpid()}/fd/<fd of the deleted file> before stopping the gateway",
            )
        raise error

    def _save_open_file(self, path: Path) -> Path | None:
        """Copy the database as this process sees it (the open, deleted file and its WAL)
        next to the lost path, through SQLite's backup API; ``None`` if that fails."""
        assert self._sync_engine is not None
        target = path.with_name(f"{path.name}.saved-{time.strftime('%Y%m%dT%H%M%S')}")
        partial_target = target.with_name(target.name + ".partial")
        try:
            with self._sync_engine.connect() as conn:
                source = conn.connection.driver_connection
                assert isinstance(source, sqlite3.Connection)
                copy = sqlite3.connect(partial_target)
                try:
                    source.backup(copy)
                finally:
                    copy.close()
            os.replace(partial_target, target)
        except (OSError, sqlite3.Error, DBAPIError):
            log.exception("could not save a copy of the lost SQLite database to %s", target)
            partial_target.unlink(missing_ok=True)
            return None
        return target

    async def close(self) -> None:
        """Commits what is queued, then stops the threads and closes the connections; a
        second call does nothing."""
        await self._shared.aclose()
        if self._async_engine is not None:
            await self._async_engine.dispose()
            return
        writer, readers, self._writer, self._readers = self._writer, self._readers, None, None
        if writer is None or readers is None or self._sync_engine is None:
            return
        await asyncio.to_thread(readers.shutdown)
        await asyncio.wrap_future(writer.submit(self._sync_engine.dispose, urgent=False))
        await asyncio.to_thread(writer.shutdown)
