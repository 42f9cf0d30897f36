"""Embedded durable queue: the ``work_items`` table in the store's own SQLite database.

Accepting a submission writes its work items in the same transaction, so there is nothing
to relay. Consumers claim items with a lease (owner + expiry) in one UPDATE; an item whose
lease expired (the worker died) is claimable again, so nothing is lost on a crash.

Leases are short (``lease_seconds``, 30 s by default) and renewed by the worker while the
delivery runs: a dead worker's items come back within one lease, and a delivery that
takes longer than a lease is not handed to a second worker meanwhile. A 300 s lease
without renewal made a crash cost five minutes and still sent slow deliveries twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, Connection, Executable, and_, delete, or_, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gateway.broker.base import DeadLetter, Lease, WorkItem
from gateway.store.database import Database, unavailable_on_failure
from gateway.store.states import WorkState
from gateway.store.tables import work_items


class EmbeddedQueue:
    work_state = WorkState.READY

    def __init__(self, db: Database, lease_seconds: float = 30.0) -> None:
        """``db``: the store's SQLite database (the accept transaction is the enqueue)."""
        self.db = db
        self.lease_seconds = lease_seconds
        self._wake = asyncio.Event()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None  # settlements are committed by the store's database (write_shared)

    async def ping(self) -> None:
        query = select(work_items.c.delivery_id).limit(1)
        with unavailable_on_failure("queue"):
            await self.db.read(lambda conn: conn.execute(query).all())

    def notify(self) -> None:
        self._wake.set()

    async def publish(self, items: Sequence[WorkItem]) -> None:
        if not items:
            return
        now = time.time()
        stmt = sqlite_insert(work_items).values(
            [
                {
                    "delivery_id": i.delivery_id,
                    "destination": i.destination,
                    "state": WorkState.READY,
                    "available_at": now,
                    "attempts": 0,
                }
                for i in items
            ]
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[work_items.c.delivery_id],
            set_={"state": WorkState.READY, "available_at": now, "lease_owner": None},
        )
        await self.db.write(lambda conn: conn.execute(stmt))
        self.notify()

    async def receive(self, max_items: int, wait: float) -> list[Lease]:
        deadline = time.monotonic() + wait
        while True:
            leases = await self._claim(max_items)
            remaining = deadline - time.monotonic()
            if leases or remaining <= 0:
                return leases
            self._wake.clear()
            # Other processes (a separate API) cannot wake us: poll at a short interval.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(remaining, 0.25))

    async def _claim(self, max_items: int) -> list[Lease]:
        now = time.time()
        claimable = or_(
            and_(work_items.c.state == WorkState.READY, work_items.c.available_at <= now),
            and_(work_items.c.state == WorkState.LEASED, work_items.c.lease_until < now),
        )
        token = uuid.uuid4().hex
        ids = (
            select(work_items.c.delivery_id)
            .where(claimable)
            .order_by(work_items.c.available_at)
            .limit(max_items)
            .scalar_subquery()
        )
        stmt = (
            update(work_items)
            .where(work_items.c.delivery_id.in_(ids), claimable)
            .values(
                state=WorkState.LEASED,
                lease_owner=token,
                lease_until=now + self.lease_seconds,
                attempts=work_items.c.attempts + 1,
            )
            .returning(work_items.c.delivery_id, work_items.c.destination, work_items.c.attempts)
        )
        rows = await self.db.write(lambda conn: conn.execute(stmt).all())
        return [
            Lease(WorkItem(r.delivery_id, r.destination), attempt=r.attempts, token=token)
            for r in rows
        ]

    def _owned(self, lease: Lease) -> ColumnElement[bool]:
        return and_(
            work_items.c.delivery_id == lease.item.delivery_id,
            work_items.c.lease_owner == lease.token,
        )

    async def _settle(self, statement: Executable) -> None:
        """Settlements share a transaction with whatever else is being written (the
        store's outcome records, other settlements): one commit serves them all."""

        def fragment(conn: Connection) -> None:
            conn.execute(statement)

        await self.db.write_shared(fragment)

    async def renew(self, leases: Sequence[Lease]) -> list[Lease]:
        """One UPDATE for all of a worker's leases, riding on the shared commit."""
        if not leases:
            return []
        stmt = (
            update(work_items)
            .where(
                work_items.c.delivery_id.in_([lease.item.delivery_id for lease in leases]),
                work_items.c.lease_owner.in_({lease.token for lease in leases}),
                work_items.c.state == WorkState.LEASED,
            )
            .values(lease_until=time.time() + self.lease_seconds)
            .returning(work_items.c.delivery_id, work_items.c.lease_owner)
        )
        held: set[tuple[str, str]] = set()

        def fragment(conn: Connection) -> None:
            held.update((r.delivery_id, r.lease_owner) for r in conn.execute(stmt))

        with unavailable_on_failure("queue"):
            await self.db.write_shared(fragment)
        return [lease for lease in leases if (lease.item.delivery_id, lease.token) in held]

    async def ack(self, lease: Lease) -> None:
        await self._settle(delete(work_items).where(self._owned(lease)))

    async def retry(self, lease: Lease, delay: float, reason: str) -> None:
        await self._settle(
            update(work_items)
            .where(self._owned(lease))
            .values(
                state=WorkState.READY,
                available_at=time.time() + delay,
                lease_owner=None,
                lease_until=None,
                reason=reason,
            )
        )

    async def release(self, lease: Lease, delay: float) -> None:
        await self._settle(
            update(work_items)
            .where(self._owned(lease))
            .values(
                state=WorkState.READY,
                available_at=time.time() + delay,
                lease_owner=None,
                lease_until=None,
                attempts=work_items.c.attempts - 1,
            )
        )

    async def dead_letter(self, lease: Lease, reason: str) -> None:
        await self._settle(
            update(work_items)
            .where(self._owned(lease))
            .values(state=WorkState.DEAD, lease_owner=None, lease_until=None, reason=reason)
        )

    async def dead_letters(self) -> list[DeadLetter]:
        query = select(work_items).where(work_items.c.state == WorkState.DEAD)
        rows = await self.db.read(
            lambda conn: conn.execute(query.order_by(work_items.c.available_at)).all()
        )
        return [
            DeadLetter(WorkItem(r.delivery_id, r.destination), r.reason or "", r.attempts)
            for r in rows
        ]

    async def replay(self, delivery_ids: Sequence[str] | None = None) -> list[str]:
        cond = work_items.c.state == WorkState.DEAD
        if delivery_ids is not None:
            cond = and_(cond, work_items.c.delivery_id.in_(delivery_ids))
        stmt = (
            update(work_items)
            .where(cond)
            .values(state=WorkState.READY, available_at=time.time(), attempts=0, reason=None)
            .returning(work_items.c.delivery_id)
        )
        rows = await self.db.write(lambda conn: conn.execute(stmt).all())
        self.notify()
        return [r.delivery_id for r in rows]
