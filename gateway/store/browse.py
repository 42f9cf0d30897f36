"""What the admin console reads from the store: submission lists with keyset paging, the
dead deliveries' context, raw XML and queue depths.

Reads only, on the reader side of ``Database``; nothing here is on the accept or delivery
path. Every list is ordered by ``(received_at, id)`` descending and paged by a keyset
(the last row's pair), never by ``OFFSET``: each filter has an index that starts with its
column and ends in ``(received_at, id)`` (``tables.py``), so a page costs the rows it shows
whatever the table's size (``bench/console_paging.py`` measures it at 1,000,000 rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, and_, exists, func, select, tuple_
from sqlalchemy.sql.elements import ColumnElement

from gateway.errors import NotFound
from gateway.store.database import Database, unavailable_on_failure
from gateway.store.states import DeliveryState
from gateway.store.tables import deliveries, submissions, work_items


@dataclass(frozen=True)
class SubmissionFilter:
    state: DeliveryState | None = None
    """Submissions with at least one delivery in this state."""
    municipality: str | None = None
    message_type: str | None = None
    sender: str | None = None
    received_from: float | None = None
    received_until: float | None = None


@dataclass(frozen=True)
class Cursor:
    """The last row of a page: the next page starts strictly after it."""

    received_at: float
    id: str

    def encode(self) -> str:
        return f"{self.received_at!r}~{self.id}"

    @classmethod
    def decode(cls, text: str) -> Cursor | None:
        at, sep, id_ = text.partition("~")
        try:
            return cls(float(at), id_) if sep and id_ else None
        except ValueError:
            return None


@dataclass(frozen=True)
class SubmissionRow:
    id: str
    received_at: float
    sender: str
    message_type: str
    municipality: str
    states: tuple[DeliveryState, ...]
    """The states of its deliveries, by destination."""


@dataclass(frozen=True)
class SubmissionPage:
    rows: list[SubmissionRow]
    next: Cursor | None
    """Where the following page starts; None on the last page."""


@dataclass(frozen=True)
class DeadContext:
    """What a dead delivery belongs to (the broker's dead letter knows only ids)."""

    delivery_id: str
    submission_id: str
    municipality: str
    message_type: str
    received_at: float
    problem: str | None
    attempts: int


@dataclass(frozen=True)
class QueueDepth:
    destination: str
    state: str
    count: int
    oldest_available_at: float | None


def _conditions(f: SubmissionFilter, few: bool = False) -> list[ColumnElement[bool]]:
    s = submissions.c
    where: list[ColumnElement[bool]] = []
    if f.municipality:
        where.append(s.municipality == f.municipality)
    if f.message_type:
        where.append(s.message_type == f.message_type)
    if f.sender:
        where.append(s.sender == f.sender)
    if f.received_from is not None:
        where.append(s.received_at >= f.received_from)
    if f.received_until is not None:
        where.append(s.received_at < f.received_until)
    if f.state is not None:
        d = deliveries.c
        if few:
            # Few submissions in this state: take them from the (state, submission_id)
            # index and sort those, instead of walking the time index to fill a page.
            where.append(
                s.id.in_(select(d.submission_id).where(d.state == f.state.value).scalar_subquery())
            )
        else:
            # Many: walk the time index and probe each row's deliveries until the page is
            # full (about PAGE / share probes).
            where.append(exists().where(and_(d.submission_id == s.id, d.state == f.state.value)))
    return where


FEW = 3000
"""Up to this many deliveries in a state, the state filter sorts them (~16 µs each on
SQLite at 1,000,000 rows); above, it walks the time index (~3.4 µs per row, and a page of
50 needs about 50 / share rows). The two cost the same near 3,000 of 1,000,000 (~50 ms),
the worst case; elsewhere far less (bench/console_paging.py)."""


def few_in_state(conn: Connection, state: DeliveryState) -> bool:
    """Counted on the (state, submission_id) index, and at most FEW + 1 rows of it."""
    found = select(deliveries.c.submission_id).where(deliveries.c.state == state.value)
    count = conn.execute(select(func.count()).select_from(found.limit(FEW + 1).subquery()))
    return count.scalar_one() <= FEW


def list_submissions(
    conn: Connection, f: SubmissionFilter, after: Cursor | None, limit: int
) -> SubmissionPage:
    s = submissions.c
    where = _conditions(f, f.state is not None and few_in_state(conn, f.state))
    if after is not None:
        where.append(tuple_(s.received_at, s.id) < tuple_(after.received_at, after.id))
    query = (
        select(s.id, s.received_at, s.sender, s.message_type, s.municipality)
        .where(*where)
        .order_by(s.received_at.desc(), s.id.desc())
        .limit(limit + 1)
    )
    found = conn.execute(query).all()
    more = len(found) > limit
    found = found[:limit]
    states: dict[str, list[DeliveryState]] = {}
    if found:
        for row in conn.execute(
            select(deliveries.c.submission_id, deliveries.c.state)
            .where(deliveries.c.submission_id.in_([r.id for r in found]))
            .order_by(deliveries.c.submission_id, deliveries.c.destination)
        ):
            states.setdefault(row.submission_id, []).append(DeliveryState(row.state))
    rows = [
        SubmissionRow(
            r.id,
            r.received_at,
            r.sender,
            r.message_type,
            r.municipality,
            tuple(states.get(r.id, ())),
        )
        for r in found
    ]
    last = rows[-1] if rows else None
    return SubmissionPage(rows, Cursor(last.received_at, last.id) if more and last else None)


def dead_context(conn: Connection, delivery_ids: Sequence[str]) -> dict[str, DeadContext]:
    if not delivery_ids:
        return {}
    d, s = deliveries.c, submissions.c
    query = (
        select(
            d.id,
            d.submission_id,
            d.problem,
            d.attempts,
            s.municipality,
            s.message_type,
            s.received_at,
        )
        .join(submissions, s.id == d.submission_id)
        .where(d.id.in_(list(delivery_ids)))
    )
    return {
        r.id: DeadContext(
            r.id,
            r.submission_id,
            r.municipality,
            r.message_type,
            r.received_at,
            r.problem,
            r.attempts,
        )
        for r in conn.execute(query)
    }


def raw_xml(conn: Connection, submission_id: str) -> bytes | None:
    """The stored XML; None once retention erased it. Unknown ids raise ``NotFound``."""
    row = conn.execute(select(submissions.c.xml).where(submissions.c.id == submission_id)).first()
    if row is None:
        raise NotFound(f"no submission {submission_id}")
    xml: bytes | None = row.xml
    return xml


def queue_depths(conn: Connection) -> list[QueueDepth]:
    """Work items per destination and state: the embedded queue itself, or (with RabbitMQ)
    the outbox rows not yet published plus the dead ones."""
    w = work_items.c
    query = (
        select(w.destination, w.state, func.count(), func.min(w.available_at))
        .group_by(w.destination, w.state)
        .order_by(w.destination, w.state)
    )
    return [QueueDepth(r[0], r[1], r[2], r[3]) for r in conn.execute(query)]


class Browser:
    """The console's reads, on the process's ``Database`` (reader threads on SQLite)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def submissions(
        self, f: SubmissionFilter, after: Cursor | None, limit: int = 50
    ) -> SubmissionPage:
        with unavailable_on_failure("store"):
            return await self.db.read(lambda conn: list_submissions(conn, f, after, limit))

    async def dead_context(self, delivery_ids: Sequence[str]) -> dict[str, DeadContext]:
        with unavailable_on_failure("store"):
            return await self.db.read(lambda conn: dead_context(conn, delivery_ids))

    async def raw_xml(self, submission_id: str) -> bytes | None:
        with unavailable_on_failure("store"):
            return await self.db.read(lambda conn: raw_xml(conn, submission_id))

    async def queue_depths(self) -> list[QueueDepth]:
        with unavailable_on_failure("store"):
            return await self.db.read(queue_depths)
