"""The store: one implementation on SQLAlchemy Core for SQLite (embedded) and PostgreSQL.

``accept`` writes the submission, its attachments' records, one delivery per route, the
first events and one work item per delivery in a single transaction: once it returns, the
submission is durable and will be delivered (the work items are either the embedded queue
itself or an outbox that a relay publishes to RabbitMQ). Concurrent accepts share that
transaction (group commit, one statement per table for the whole batch): one fsync then
serves many submissions, and each caller still returns only after the commit.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import queue
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from gateway.errors import DuplicateConflict, NotFound, Unavailable
from gateway.store import migrate
from gateway.store.group_commit import GroupCommit
from gateway.store.records import (
    AttachmentRecord,
    DeliveryJob,
    DeliveryView,
    EventView,
    NewSubmission,
    SubmissionView,
)
from gateway.store.tables import attachments, deliveries, events, submissions, work_items


def _sqlite_events(engine: Engine, synchronous: str, busy_seconds: float) -> None:
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


def make_engine(
    url: str, *, sqlite_synchronous: str = "FULL", sqlite_busy_seconds: float = 30.0
) -> AsyncEngine:
    if url.startswith("sqlite"):
        # Reads: one aiosqlite thread per connection, enough that concurrent deliveries
        # and accepts do not queue for a connection (reads never wait for the write lock).
        engine = create_async_engine(
            url, connect_args={"timeout": sqlite_busy_seconds}, pool_size=20, max_overflow=20
        )
        _sqlite_events(engine.sync_engine, sqlite_synchronous, sqlite_busy_seconds)
        # The hot paths: synchronous connections in a few threads (see ``Database``).
        sync_engine = create_engine(
            engine.url.set(drivername="sqlite"),
            connect_args={"timeout": sqlite_busy_seconds, "check_same_thread": False},
            pool_size=1 + Database.READERS,
            max_overflow=0,
        )
        _sqlite_events(sync_engine, sqlite_synchronous, sqlite_busy_seconds)
        _databases[engine.sync_engine] = Database(engine, sync_engine)
        return engine
    # PostgreSQL (asyncpg): pre-ping replaces connections that died with a server restart;
    # short connect/pool timeouts make an outage a quick 503 instead of a hanging request.
    return create_async_engine(
        url,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
        pool_timeout=10,
        connect_args={"timeout": 5, "command_timeout": 60},
    )


T = TypeVar("T")


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
    """Runs store operations, each given as one synchronous function of a connection.

    SQLite: writes in one dedicated thread, reads in a few others, all on synchronous
    connections, so that a whole operation is a single hand-off between threads. With
    aiosqlite every statement was ~4 hand-offs through its thread and the event loop:
    a delivery's job read took 12 of them (2.5 ms serial, 30 ms under load), and while
    the loop was busy with requests the write lock stayed held between statements,
    ~100 % of the time under load, 23 ms per group commit (docs/performance.md). The one writer
    thread also is SQLite's one writer: this process's writes queue in its executor.

    PostgreSQL: the same functions through ``run_sync`` on the async engine (greenlets),
    a pooled connection per operation; no single writer there.
    """

    READERS = 4

    def __init__(self, engine: AsyncEngine, sync_engine: Engine | None = None) -> None:
        self.engine = engine
        self.sync_engine = sync_engine
        self._writer: _WriterThread | None = None
        self._readers: ThreadPoolExecutor | None = None
        if sync_engine is not None:
            self._writer = _WriterThread()
            self._readers = ThreadPoolExecutor(self.READERS, thread_name_prefix="sqlite-reader")
        self._shared: GroupCommit[Callable[[Connection], None], None] = GroupCommit(
            self._commit_shared
        )

    async def write_shared(self, fragment: Callable[[Connection], None]) -> None:
        """``fragment`` in the next shared write transaction (group commit): the outcome
        records and queue settlements of concurrent deliveries share one commit, so a
        delivery's two writes do not cost two transactions of their own."""
        await self._shared.submit(fragment)

    async def _commit_shared(self, fragments: Sequence[Callable[[Connection], None]]) -> list[None]:
        def body(conn: Connection) -> None:
            for fragment in fragments:
                fragment(conn)

        await self.write(body)
        return [None] * len(fragments)

    async def write(self, body: Callable[[Connection], T], *, urgent: bool = False) -> T:
        """``body`` in a write transaction (SQLite: BEGIN IMMEDIATE); ``urgent``: ahead of
        the queued non-urgent writes of this process (a client is waiting)."""
        if self.sync_engine is None:
            async with self.engine.begin() as conn:
                return await conn.run_sync(body)
        if self._writer is None:
            raise Unavailable("store closed")
        future = self._writer.submit(partial(self._transaction, body, False), urgent=urgent)
        return await asyncio.wrap_future(future)

    async def read(self, body: Callable[[Connection], T]) -> T:
        """``body`` in a read transaction (SQLite: deferred, never waits for writers)."""
        if self.sync_engine is None:
            async with self.engine.connect() as conn:
                return await conn.run_sync(body)
        if self._readers is None:
            raise Unavailable("store closed")
        return await asyncio.get_running_loop().run_in_executor(
            self._readers, self._transaction, body, True
        )

    def _transaction(self, body: Callable[[Connection], T], read_only: bool) -> T:
        assert self.sync_engine is not None
        with self.sync_engine.connect() as conn:
            if read_only:
                conn.execution_options(**{READ_ONLY: True})
            with conn.begin():
                return body(conn)

    async def close(self) -> None:
        """Commits what is queued, then stops the threads; a second call does nothing."""
        await self._shared.aclose()
        writer, readers, self._writer, self._readers = self._writer, self._readers, None, None
        if writer is None or readers is None or self.sync_engine is None:
            return
        await asyncio.to_thread(readers.shutdown)
        await asyncio.wrap_future(writer.submit(self.sync_engine.dispose, urgent=False))
        await asyncio.to_thread(writer.shutdown)


_databases: weakref.WeakKeyDictionary[Engine, Database] = weakref.WeakKeyDictionary()


def database_for(engine: AsyncEngine) -> Database:
    """The engine's ``Database`` (SQLite: its threads, made together with the engine)."""
    database = _databases.get(engine.sync_engine)
    if database is None:
        database = _databases.setdefault(engine.sync_engine, Database(engine))
    return database


READ_ONLY = "xoev_read_only"


@asynccontextmanager
async def read_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for reads only: on SQLite it never queues behind the write lock."""
    async with engine.connect() as conn:
        yield await conn.execution_options(**{READ_ONLY: True})


UNAVAILABLE_ERRORS = (OperationalError, DBAPIError, OSError, ConnectionError)

# Any 64-bit number; serialises concurrent migrations of several processes on PostgreSQL.
MIGRATION_LOCK = 0x786F65762D6777


@contextmanager
def unavailable_on_failure(what: str) -> Iterator[None]:
    """Map a lost or refused database connection to ``Unavailable`` (HTTP 503)."""
    try:
        yield
    except IntegrityError:
        raise
    except UNAVAILABLE_ERRORS as exc:
        raise Unavailable(f"{what} unavailable: {type(exc).__name__}") from None


def _now() -> float:
    return time.time()


def _settle_duplicate(
    new: NewSubmission, first_id: str, content_sha256: str, sender: str
) -> tuple[str, bool] | Exception:
    if content_sha256 != new.content_sha256 or sender != new.sender:
        return DuplicateConflict(
            f"nachrichtenUUID {new.message_uuid} was already accepted with other content"
        )
    return first_id, False


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt, recorded together with its outcome (one write, not two)."""

    number: int
    config_version: str | None
    started_at: float = field(default_factory=time.time)

    def detail(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"attempt": self.number}
        if self.config_version is not None:
            detail["config_version"] = self.config_version
        return detail


@dataclass(frozen=True)
class _Outcome:
    job: DeliveryJob
    values: dict[str, Any]
    kind: str
    detail: dict[str, Any]
    attempt: Attempt | None


def _event_row(job: DeliveryJob, at: float, kind: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "submission_id": job.submission_id,
        "delivery_id": job.delivery_id,
        "at": at,
        "kind": kind,
        "detail": json.dumps(detail, ensure_ascii=False),
    }


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.db = database_for(engine)
        self._accepts: GroupCommit[tuple[NewSubmission, str], tuple[str, bool]] = GroupCommit(
            self._accept_batch
        )

    @classmethod
    def from_url(
        cls, url: str, *, sqlite_synchronous: str = "FULL", sqlite_busy_seconds: float = 30.0
    ) -> Store:
        return cls(
            make_engine(
                url, sqlite_synchronous=sqlite_synchronous, sqlite_busy_seconds=sqlite_busy_seconds
            )
        )

    async def _write(self, body: Callable[[Connection], T]) -> T:
        with unavailable_on_failure("store"):
            return await self.db.write(body)

    async def _read(self, body: Callable[[Connection], T]) -> T:
        with unavailable_on_failure("store"):
            return await self.db.read(body)

    async def migrate(self) -> None:
        with unavailable_on_failure("store"):
            async with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # Several api/worker processes start at once; DDL is transactional here,
                    # so whoever waits on the lock then finds the schema at head.
                    await conn.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
                await conn.run_sync(migrate.upgrade)

    async def close(self) -> None:
        await self._accepts.aclose()
        await self.db.close()
        await self.engine.dispose()

    async def ping(self) -> None:
        with unavailable_on_failure("store"):
            async with read_connection(self.engine) as conn:
                await conn.execute(text("SELECT 1"))

    async def accept(self, new: NewSubmission, work_state: str) -> tuple[str, bool]:
        """Store a submission durably; return ``(id, created)``.

        Idempotent by ``message_uuid``: the same content again returns the first id with
        ``created=False``; other content under the same UUID raises ``DuplicateConflict``.
        """
        return await self._accepts.submit((new, work_state))

    async def _accept_batch(
        self, batch: Sequence[tuple[NewSubmission, str]]
    ) -> list[tuple[str, bool] | Exception]:
        now = _now()
        try:
            return await self.db.write(lambda conn: self._insert_new(conn, batch, now), urgent=True)
        except IntegrityError:
            # Another process stored one of these UUIDs after our check (PostgreSQL with
            # several API processes): settle each on its own, as if there were no batch.
            return [await self._accept_one(new, work_state) for new, work_state in batch]
        except UNAVAILABLE_ERRORS as exc:
            return [Unavailable(f"store unavailable: {type(exc).__name__}")] * len(batch)

    def _insert_new(
        self, conn: Connection, batch: Sequence[tuple[NewSubmission, str]], now: float
    ) -> list[tuple[str, bool] | Exception]:
        """Insert the batch's new UUIDs; settle the others against what is stored first."""
        rows = conn.execute(
            select(
                submissions.c.message_uuid,
                submissions.c.id,
                submissions.c.content_sha256,
                submissions.c.sender,
            ).where(submissions.c.message_uuid.in_([new.message_uuid for new, _ in batch]))
        )
        first: dict[str, tuple[str, str, str]] = {
            r.message_uuid: (r.id, r.content_sha256, r.sender) for r in rows
        }
        outcomes: list[tuple[str, bool] | Exception] = []
        fresh: list[tuple[NewSubmission, str]] = []
        for new, work_state in batch:
            known = first.get(new.message_uuid)
            if known is None:
                first[new.message_uuid] = (new.id, new.content_sha256, new.sender)
                fresh.append((new, work_state))
                outcomes.append((new.id, True))
            else:
                outcomes.append(_settle_duplicate(new, *known))
        if fresh:
            self._insert(conn, fresh, now)
        return outcomes

    async def _accept_one(
        self, new: NewSubmission, work_state: str
    ) -> tuple[str, bool] | Exception:
        now = _now()
        try:
            await self.db.write(
                lambda conn: self._insert(conn, [(new, work_state)], now), urgent=True
            )
            return new.id, True
        except IntegrityError:
            pass
        except UNAVAILABLE_ERRORS as exc:
            return Unavailable(f"store unavailable: {type(exc).__name__}")
        query = select(submissions.c.id, submissions.c.content_sha256, submissions.c.sender).where(
            submissions.c.message_uuid == new.message_uuid
        )
        try:
            row = await self.db.read(lambda conn: conn.execute(query).first())
        except UNAVAILABLE_ERRORS as exc:
            return Unavailable(f"store unavailable: {type(exc).__name__}")
        if row is None:  # the conflict was not on the UUID: a genuine bug, surface it
            return RuntimeError(f"integrity error storing {new.message_uuid}")
        return _settle_duplicate(new, str(row.id), row.content_sha256, row.sender)

    def _insert(
        self, conn: Connection, batch: Sequence[tuple[NewSubmission, str]], now: float
    ) -> None:
        """One executemany per table for the whole batch."""
        conn.execute(
            insert(submissions),
            [
                {
                    "id": new.id,
                    "message_uuid": new.message_uuid,
                    "sender": new.sender,
                    "content_sha256": new.content_sha256,
                    "message_type": new.message_type,
                    "schema_set": new.schema_set,
                    "municipality": new.municipality,
                    "recipient": new.recipient,
                    "author": new.author,
                    "leika": new.leika,
                    "config_version": new.config_version,
                    "received_at": now,
                    "xml": new.xml,
                }
                for new, _ in batch
            ],
        )
        attachment_rows = [
            {
                "submission_id": new.id,
                "name": a.name,
                "content_type": a.content_type,
                "sha256": a.sha256,
                "size": a.size,
            }
            for new, _ in batch
            for a in new.attachments
        ]
        if attachment_rows:
            conn.execute(insert(attachments), attachment_rows)
        conn.execute(
            insert(deliveries),
            [
                {
                    "id": d.id,
                    "submission_id": new.id,
                    "destination": d.destination,
                    "adapter": d.adapter,
                    "state": "pending",
                    "attempts": 0,
                    "updated_at": now,
                }
                for new, _ in batch
                for d in new.deliveries
            ],
        )
        conn.execute(
            insert(events),
            [
                {
                    "submission_id": new.id,
                    "delivery_id": None,
                    "at": now,
                    "kind": "accepted",
                    "detail": json.dumps(
                        {
                            "municipality": new.municipality,
                            "message_type": new.message_type,
                            "destinations": [d.destination for d in new.deliveries],
                            "config_version": new.config_version,
                            "attachments": len(new.attachments),
                            "source": new.source,
                            **({"references": new.references} if new.references else {}),
                        }
                    ),
                }
                for new, _ in batch
            ],
        )
        conn.execute(
            insert(work_items),
            [
                {
                    "delivery_id": d.id,
                    "destination": d.destination,
                    "state": work_state,
                    "available_at": now,
                    "attempts": 0,
                }
                for new, work_state in batch
                for d in new.deliveries
            ],
        )

    async def submission(self, submission_id: str) -> SubmissionView:
        return await self._read(lambda conn: self._submission(conn, submission_id))

    def _submission(self, conn: Connection, submission_id: str) -> SubmissionView:
        sub = (conn.execute(select(submissions).where(submissions.c.id == submission_id))).first()
        if sub is None:
            raise NotFound(f"no submission {submission_id}")
        dels = (
            conn.execute(
                select(deliveries)
                .where(deliveries.c.submission_id == submission_id)
                .order_by(deliveries.c.destination)
            )
        ).all()
        evs = (
            conn.execute(
                select(events).where(events.c.submission_id == submission_id).order_by(events.c.id)
            )
        ).all()
        atts = self._attachments(conn, submission_id)
        return SubmissionView(
            id=sub.id,
            message_uuid=sub.message_uuid,
            sender=sub.sender,
            message_type=sub.message_type,
            municipality=sub.municipality,
            recipient=sub.recipient,
            received_at=sub.received_at,
            config_version=sub.config_version,
            deliveries=[
                DeliveryView(
                    id=d.id,
                    destination=d.destination,
                    adapter=d.adapter,
                    state=d.state,
                    attempts=d.attempts,
                    receipt_reference=d.receipt_reference,
                    receipt_message=d.receipt_message,
                    problem=d.problem,
                    updated_at=d.updated_at,
                    config_version=d.config_version,
                )
                for d in dels
            ],
            events=[
                EventView(at=e.at, kind=e.kind, delivery_id=e.delivery_id, detail=e.detail)
                for e in evs
            ],
            attachments=atts,
        )

    def _attachments(self, conn: Connection, submission_id: str) -> list[AttachmentRecord]:
        rows = (
            conn.execute(
                select(attachments)
                .where(attachments.c.submission_id == submission_id)
                .order_by(attachments.c.id)
            )
        ).all()
        return [
            AttachmentRecord(name=r.name, content_type=r.content_type, sha256=r.sha256, size=r.size)
            for r in rows
        ]

    async def job(self, delivery_id: str) -> DeliveryJob | None:
        return await self._read(lambda conn: self._job(conn, delivery_id))

    async def jobs(self, delivery_ids: Sequence[str]) -> dict[str, DeliveryJob | None]:
        """Several deliveries' jobs in one read; ``None`` for unknown ids."""

        def body(conn: Connection) -> dict[str, DeliveryJob | None]:
            return {delivery_id: self._job(conn, delivery_id) for delivery_id in delivery_ids}

        return await self._read(body)

    def _job(self, conn: Connection, delivery_id: str) -> DeliveryJob | None:
        row = (
            conn.execute(
                select(
                    deliveries.c.id,
                    deliveries.c.submission_id,
                    deliveries.c.destination,
                    deliveries.c.state,
                    submissions.c.message_uuid,
                    submissions.c.message_type,
                    submissions.c.municipality,
                    submissions.c.sender,
                    submissions.c.xml,
                )
                .join(submissions, submissions.c.id == deliveries.c.submission_id)
                .where(deliveries.c.id == delivery_id)
            )
        ).first()
        if row is None:
            return None
        atts = self._attachments(conn, row.submission_id)
        return DeliveryJob(
            delivery_id=row.id,
            submission_id=row.submission_id,
            destination=row.destination,
            state=row.state,
            message_uuid=row.message_uuid,
            message_type=row.message_type,
            municipality=row.municipality,
            sender=row.sender,
            xml=row.xml,
            attachments=atts,
        )

    async def record_attempt(
        self, job: DeliveryJob, attempt: int, config_version: str | None = None
    ) -> None:
        """``config_version``: the configuration (route and mapping) this attempt uses."""
        detail = Attempt(attempt, config_version).detail()

        def body(conn: Connection) -> None:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id == job.delivery_id)
                .values(attempts=attempt, updated_at=_now(), config_version=config_version)
            )
            conn.execute(insert(events), [_event_row(job, _now(), "delivery.attempt", detail)])

        await self._write(body)

    async def record_delivered(
        self,
        job: DeliveryJob,
        reference: str | None,
        message: str | None,
        attempt: Attempt | None = None,
    ) -> None:
        values = {
            "state": "delivered",
            "receipt_reference": reference,
            "receipt_message": message,
            "problem": None,
        }
        detail = {"destination": job.destination, "reference": reference, "message": message}
        await self._record(_Outcome(job, values, "delivery.delivered", detail, attempt))

    async def record_retry(
        self, job: DeliveryJob, problem: str, delay: float, attempt: Attempt | None = None
    ) -> None:
        detail = {"problem": problem, "delay_seconds": round(delay, 3)}
        await self._record(_Outcome(job, {"problem": problem}, "delivery.retry", detail, attempt))

    async def record_dead(
        self, job: DeliveryJob, problem: str, attempt: Attempt | None = None
    ) -> None:
        values = {"state": "dead", "problem": problem}
        await self._record(_Outcome(job, values, "delivery.dead", {"problem": problem}, attempt))

    async def _record(self, outcome: _Outcome) -> None:
        now = _now()
        job, values = outcome.job, {**outcome.values, "updated_at": now}
        rows: list[dict[str, Any]] = []
        if outcome.attempt is not None:
            values["attempts"] = outcome.attempt.number
            values["config_version"] = outcome.attempt.config_version
            rows.append(
                _event_row(
                    job, outcome.attempt.started_at, "delivery.attempt", outcome.attempt.detail()
                )
            )
        rows.append(_event_row(job, now, outcome.kind, outcome.detail))

        def fragment(conn: Connection) -> None:
            conn.execute(
                update(deliveries).where(deliveries.c.id == job.delivery_id).values(values)
            )
            conn.execute(insert(events), rows)

        with unavailable_on_failure("store"):
            await self.db.write_shared(fragment)

    async def record_replayed(self, delivery_ids: Sequence[str]) -> None:
        if not delivery_ids:
            return

        def body(conn: Connection) -> None:
            rows = (
                conn.execute(
                    select(deliveries.c.id, deliveries.c.submission_id).where(
                        deliveries.c.id.in_(delivery_ids)
                    )
                )
            ).all()
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(delivery_ids))
                .values(state="pending", updated_at=_now())
            )
            now = _now()
            if rows:
                conn.execute(
                    insert(events),
                    [
                        {
                            "submission_id": r.submission_id,
                            "delivery_id": r.id,
                            "at": now,
                            "kind": "delivery.replayed",
                            "detail": None,
                        }
                        for r in rows
                    ],
                )

        await self._write(body)
