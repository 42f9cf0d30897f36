"""The store: one implementation on SQLAlchemy Core for SQLite (embedded) and PostgreSQL.

``accept`` writes the submission, its attachments' records, one delivery per route, the
first events and one work item per delivery in a single transaction: once it returns, the
submission is durable and will be delivered (the work items are either the embedded queue
itself or an outbox that a relay publishes to RabbitMQ). Concurrent accepts share that
transaction (group commit, one statement per table for the whole batch): one fsync then
serves many submissions, and each caller still returns only after the commit.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection, and_, exists, func, insert, select, text, tuple_, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from gateway.errors import DuplicateConflict, NotFound, UnacceptableField, Unavailable
from gateway.sdk import attachment_file_name
from gateway.store.database import UNAVAILABLE_ERRORS, Database, unavailable_on_failure
from gateway.store.group_commit import GroupCommit
from gateway.store.limits import check_storable
from gateway.store.records import (
    AttachmentRecord,
    DeliveryJob,
    DeliveryView,
    ErasedPayload,
    EventView,
    NewSubmission,
    RetentionCandidate,
    SubmissionView,
)
from gateway.store.states import DeliveryState, WorkState
from gateway.store.tables import attachments, deliveries, events, submissions, work_items
from gateway.telemetry.metrics import QueueRow

T = TypeVar("T")

log = logging.getLogger("xoev_gateway.store")


def _refused_row(exc: DBAPIError) -> bool:
    """The database refused a row's values (SQLSTATE class 22 data exception, 23 integrity
    constraint), as opposed to being unreachable: the other rows of its batch are fine."""
    if isinstance(exc, IntegrityError):
        return True
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(state, str) and state[:2] in ("22", "23")


def _now() -> float:
    return time.time()


def _settle_duplicate(
    new: NewSubmission, first_id: str, content_sha256: str
) -> tuple[str, bool] | Exception:
    """``new`` has the UUID of the same sender's ``first_id``: other senders never meet here
    (a UUID is unique per sender, so they can neither block one nor learn that it exists)."""
    if content_sha256 != new.content_sha256:
        return DuplicateConflict(
            f"nachrichtenUUID {new.message_uuid} was already accepted with other content"
        )
    return first_id, False


def _refused(new: NewSubmission, exc: DBAPIError) -> UnacceptableField:
    """The database refused this submission alone: the sender's 4xx, and the log says why
    (a limit in limits.py that does not match the schema would show up here)."""
    cause = str(exc.orig).splitlines()[0] if str(exc.orig) else type(exc.orig).__name__
    log.error("store refused submission %s from %s: %s", new.message_uuid, new.sender, cause)
    return UnacceptableField(f"the store refused a value of this submission: {cause}", "submission")


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
    """Submissions, their deliveries and the event log, on the process's ``Database``.

    ``close`` settles the accepts in flight; the database itself belongs to whoever
    opened it (the runtime) and is closed after the store.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._accepts: GroupCommit[tuple[NewSubmission, WorkState], tuple[str, bool]] = GroupCommit(
            self._accept_batch
        )

    async def _write(self, body: Callable[[Connection], T]) -> T:
        with unavailable_on_failure("store"):
            return await self.db.write(body)

    async def _read(self, body: Callable[[Connection], T]) -> T:
        with unavailable_on_failure("store"):
            return await self.db.read(body)

    async def close(self) -> None:
        await self._accepts.aclose()

    async def ping(self) -> None:
        await self._read(lambda conn: conn.execute(text("SELECT 1")).all())

    async def accept(self, new: NewSubmission, work_state: WorkState) -> tuple[str, bool]:
        """Store a submission durably; return ``(id, created)``.

        Idempotent by ``(message_uuid, sender)``: the same content again returns the first
        id with ``created=False``; other content under the same sender's UUID raises
        ``DuplicateConflict``. Another sender's use of the UUID is a submission of its own.
        A value the store cannot hold raises ``UnacceptableField`` before it joins a batch.
        """
        check_storable(new)
        return await self._accepts.submit((new, work_state))

    async def _accept_batch(
        self, batch: Sequence[tuple[NewSubmission, WorkState]]
    ) -> list[tuple[str, bool] | Exception]:
        now = _now()
        try:
            return await self.db.write(lambda conn: self._insert_new(conn, batch, now), urgent=True)
        except DBAPIError as exc:
            if not _refused_row(exc):
                return [Unavailable(f"store unavailable: {type(exc).__name__}")] * len(batch)
            # Another process stored one of these UUIDs after our check (PostgreSQL with
            # several API processes), or the database refused one row's values that the
            # limits let through: settle each on its own, as if there were no batch, so
            # that one bad row fails only itself.
            return [await self._accept_one(new, work_state) for new, work_state in batch]
        except UNAVAILABLE_ERRORS as exc:
            return [Unavailable(f"store unavailable: {type(exc).__name__}")] * len(batch)

    def _insert_new(
        self, conn: Connection, batch: Sequence[tuple[NewSubmission, WorkState]], now: float
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
        first: dict[tuple[str, str], tuple[str, str]] = {
            (r.message_uuid, r.sender): (r.id, r.content_sha256) for r in rows
        }
        outcomes: list[tuple[str, bool] | Exception] = []
        fresh: list[tuple[NewSubmission, WorkState]] = []
        for new, work_state in batch:
            key = (new.message_uuid, new.sender)
            known = first.get(key)
            if known is None:
                first[key] = (new.id, new.content_sha256)
                fresh.append((new, work_state))
                outcomes.append((new.id, True))
            else:
                outcomes.append(_settle_duplicate(new, *known))
        if fresh:
            self._insert(conn, fresh, now)
        return outcomes

    async def _accept_one(
        self, new: NewSubmission, work_state: WorkState
    ) -> tuple[str, bool] | Exception:
        now = _now()
        conflict: IntegrityError
        try:
            await self.db.write(
                lambda conn: self._insert(conn, [(new, work_state)], now), urgent=True
            )
            return new.id, True
        except IntegrityError as exc:
            conflict = exc
        except DBAPIError as exc:
            if _refused_row(exc):
                return _refused(new, exc)
            return Unavailable(f"store unavailable: {type(exc).__name__}")
        except UNAVAILABLE_ERRORS as exc:
            return Unavailable(f"store unavailable: {type(exc).__name__}")
        query = select(submissions.c.id, submissions.c.content_sha256).where(
            submissions.c.message_uuid == new.message_uuid, submissions.c.sender == new.sender
        )
        try:
            row = await self.db.read(lambda conn: conn.execute(query).first())
        except UNAVAILABLE_ERRORS as exc:
            return Unavailable(f"store unavailable: {type(exc).__name__}")
        if row is None:  # the conflict was not on the UUID: a constraint refused the row
            return _refused(new, conflict)
        return _settle_duplicate(new, str(row.id), row.content_sha256)

    def _insert(
        self, conn: Connection, batch: Sequence[tuple[NewSubmission, WorkState]], now: float
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
                    "recipient_source": new.recipient_source,
                    "author": new.author,
                    "leika": new.leika,
                    "config_version": new.config_version,
                    "received_at": now,
                    "xml": new.xml,
                    "xml_sha256": new.xml_sha256,
                    "traceparent": new.traceparent,
                }
                for new, _ in batch
            ],
        )
        attachment_rows = [
            {
                "submission_id": new.id,
                "name": a.name,
                "file_name": a.file_name or attachment_file_name(index, a.name),
                "content_type": a.content_type,
                "sha256": a.sha256,
                "size": a.size,
            }
            for new, _ in batch
            for index, a in enumerate(new.attachments, 1)
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
                    "state": DeliveryState.PENDING,
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
                            "recipient_source": new.recipient_source,
                            **new.header_detail,
                            **({"references": new.references} if new.references else {}),
                            **({"validation": new.validation} if new.validation else {}),
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
                    state=DeliveryState(d.state),
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
            recipient_source=sub.recipient_source,
            payload_erased_at=sub.payload_erased_at,
            content_sha256=sub.content_sha256,
            xml_sha256=sub.xml_sha256,
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
            AttachmentRecord(
                name=r.name,
                content_type=r.content_type,
                sha256=r.sha256,
                size=r.size,
                file_name=r.file_name or attachment_file_name(index, r.name),
            )
            for index, r in enumerate(rows, 1)
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
                    submissions.c.traceparent,
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
            state=DeliveryState(row.state),
            message_uuid=row.message_uuid,
            message_type=row.message_type,
            municipality=row.municipality,
            sender=row.sender,
            xml=row.xml,
            attachments=atts,
            traceparent=row.traceparent,
        )

    async def record_delivered(
        self,
        job: DeliveryJob,
        reference: str | None,
        message: str | None,
        attempt: Attempt | None = None,
    ) -> None:
        values = {
            "state": DeliveryState.DELIVERED,
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
        values = {"state": DeliveryState.DEAD, "problem": problem}
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

    async def record_source_event(
        self, submission_id: str, kind: str, detail: dict[str, Any]
    ) -> None:
        """Append what a source told its transport after the accept (e.g. FIT-Connect's
        ``accept-submission`` sent); rides on the shared group commit of the worker's writes."""
        row = {
            "submission_id": submission_id,
            "delivery_id": None,
            "at": _now(),
            "kind": kind,
            "detail": json.dumps(detail, ensure_ascii=False),
        }

        def fragment(conn: Connection) -> None:
            conn.execute(insert(events), [row])

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
                .values(state=DeliveryState.PENDING, updated_at=_now())
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

    async def queue_rows(self) -> list[QueueRow]:
        """Pending and dead deliveries per destination: count and oldest ``updated_at``
        (accepted or last attempted); an index range scan (``ix_deliveries_state_destination``)."""

        def body(conn: Connection) -> list[QueueRow]:
            query = (
                select(
                    deliveries.c.destination,
                    deliveries.c.state,
                    func.count(),
                    func.min(deliveries.c.updated_at),
                )
                .where(deliveries.c.state.in_((DeliveryState.PENDING, DeliveryState.DEAD)))
                .group_by(deliveries.c.state, deliveries.c.destination)
            )
            return [QueueRow(d, s, n, oldest) for d, s, n, oldest in conn.execute(query).all()]

        return await self._read(body)

    # Retention and erasure: the payload (XML, attachment blobs) goes, the evidence stays
    # (ids, hashes, sizes, timestamps, deliveries, the event log).

    async def retention_candidates(
        self, received_before: float, after: tuple[float, str] | None, limit: int
    ) -> list[RetentionCandidate]:
        """Submissions received before ``received_before`` whose payload is kept and whose
        deliveries are all final (delivered or dead), oldest first, after the key ``after``
        (``(received_at, id)`` of the last one of the previous page)."""

        def body(conn: Connection) -> list[RetentionCandidate]:
            pending = exists().where(
                and_(
                    deliveries.c.submission_id == submissions.c.id,
                    deliveries.c.state == DeliveryState.PENDING,
                )
            )
            query = (
                select(
                    submissions.c.id,
                    submissions.c.message_type,
                    submissions.c.leika,
                    submissions.c.received_at,
                )
                .where(
                    submissions.c.payload_erased_at.is_(None),
                    submissions.c.received_at <= received_before,
                    ~pending,
                )
                .order_by(submissions.c.received_at, submissions.c.id)
                .limit(limit)
            )
            if after is not None:
                query = query.where(
                    tuple_(submissions.c.received_at, submissions.c.id) > tuple_(*after)
                )
            subs = conn.execute(query).all()
            if not subs:
                return []
            by_submission: dict[str, list[tuple[str, DeliveryState, float]]] = {}
            for d in conn.execute(
                select(
                    deliveries.c.submission_id,
                    deliveries.c.destination,
                    deliveries.c.state,
                    deliveries.c.updated_at,
                ).where(deliveries.c.submission_id.in_([r.id for r in subs]))
            ):
                by_submission.setdefault(d.submission_id, []).append(
                    (d.destination, DeliveryState(d.state), d.updated_at)
                )
            return [
                RetentionCandidate(
                    r.id, r.message_type, r.leika, r.received_at, by_submission.get(r.id, [])
                )
                for r in subs
            ]

        return await self._read(body)

    async def erase_payloads(
        self, submission_ids: Sequence[str], reason: str, actor: str | None = None
    ) -> list[ErasedPayload]:
        """Erase the XML of these submissions and record ``payload.erased``; the attachment
        rows stay as evidence (name, hash, size) while their blobs may go. An id already
        erased comes back with ``already=True``; an unknown id raises ``NotFound``."""
        now = _now()

        def body(conn: Connection) -> list[ErasedPayload]:
            rows = conn.execute(
                select(submissions.c.id, submissions.c.payload_erased_at).where(
                    submissions.c.id.in_(submission_ids)
                )
            ).all()
            known = {r.id: r.payload_erased_at for r in rows}
            missing = [i for i in submission_ids if i not in known]
            if missing:
                raise NotFound(f"no submission {missing[0]}")
            shas: dict[str, list[str]] = {}
            for a in conn.execute(
                select(attachments.c.submission_id, attachments.c.sha256).where(
                    attachments.c.submission_id.in_(submission_ids)
                )
            ):
                shas.setdefault(a.submission_id, []).append(a.sha256)
            # What this transaction erased (RETURNING): a concurrent erasure of the same
            # submission (two workers' retention runs) waits for the row lock and then finds
            # it erased, so the event is written once.
            fresh = {
                r.id
                for r in conn.execute(
                    update(submissions)
                    .where(
                        submissions.c.id.in_([i for i, at in known.items() if at is None]),
                        submissions.c.payload_erased_at.is_(None),
                    )
                    .values(xml=None, payload_erased_at=now)
                    .returning(submissions.c.id)
                )
            }
            if fresh:
                detail = {"reason": reason, **({"by": actor} if actor else {})}
                conn.execute(
                    insert(events),
                    [
                        {
                            "submission_id": i,
                            "delivery_id": None,
                            "at": now,
                            "kind": "payload.erased",
                            "detail": json.dumps(
                                {**detail, "attachments": len(shas.get(i, []))}, ensure_ascii=False
                            ),
                        }
                        for i in sorted(fresh)
                    ],
                )
            return [
                ErasedPayload(
                    i,
                    now if i in fresh or known[i] is None else float(known[i]),
                    sorted(set(shas.get(i, []))),
                    already=i not in fresh,
                )
                for i in submission_ids
            ]

        return await self._write(body)

    async def referenced_blobs(self, sha256s: Sequence[str]) -> set[str]:
        """Which of these blobs a submission whose payload is kept still references."""
        if not sha256s:
            return set()

        def body(conn: Connection) -> set[str]:
            rows = conn.execute(
                select(attachments.c.sha256)
                .distinct()
                .join(submissions, submissions.c.id == attachments.c.submission_id)
                .where(
                    attachments.c.sha256.in_(list(sha256s)),
                    submissions.c.payload_erased_at.is_(None),
                )
            )
            return {r.sha256 for r in rows}

        return await self._read(body)
