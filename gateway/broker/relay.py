"""The outbox relay: moves work items from the store's outbox to an external broker.

``Store.accept`` writes one ``work_items`` row in state ``outbox`` per delivery, in the same
transaction as the submission. The relay locks a batch (``FOR UPDATE SKIP LOCKED``, so
several relays in several API processes share the work without publishing a row twice
concurrently), publishes it with confirms, deletes the rows and commits. A crash between
the confirm and the commit publishes those rows again: a duplicate the worker absorbs,
because it skips deliveries that are no longer pending and adapters are idempotent by
delivery id. A broker or store outage leaves the rows where they are until it is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import Connection, delete, select

from gateway.broker.base import Broker, WorkItem
from gateway.errors import GatewayError
from gateway.store.database import Database, unavailable_on_failure
from gateway.store.states import WorkState
from gateway.store.tables import work_items

log = logging.getLogger("xoev_gateway.relay")


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        broker: Broker,
        batch_size: int = 500,
        poll_seconds: float = 1.0,
        linger_seconds: float = 0.02,
    ) -> None:
        self.db = db
        self.broker = broker
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.linger_seconds = linger_seconds
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def notify(self) -> None:
        """New outbox rows in this process: relay now instead of at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        failing = False
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                moved = await self.relay_once()
            except GatewayError as exc:
                if not failing:  # log the first failure of an outage, not every poll
                    log.warning("outbox relay paused: %s", exc.detail)
                failing, moved = True, 0
            else:
                if failing:
                    log.info("outbox relay resumed")
                failing = False
            if moved < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
                # Under load every accept wakes us: linger briefly so that one transaction
                # and one round of confirms carry many rows instead of one.
                await asyncio.sleep(self.linger_seconds)

    async def relay_once(self) -> int:
        """Publish one batch of outbox rows; return how many were moved."""
        with unavailable_on_failure("store"):
            rows = await self.db.write_awaiting(self._lock_batch, self._publish, self._delete)
        return len(rows)

    def _lock_batch(self, conn: Connection) -> list[WorkItem]:
        rows = conn.execute(
            select(work_items.c.delivery_id, work_items.c.destination)
            .where(work_items.c.state == WorkState.OUTBOX)
            .order_by(work_items.c.available_at)
            .limit(self.batch_size)
            .with_for_update(skip_locked=True)
        )
        return [WorkItem(r.delivery_id, r.destination) for r in rows]

    async def _publish(self, items: list[WorkItem]) -> None:
        # Raises Unavailable unless every item is confirmed: the transaction rolls back
        # and the rows stay in the outbox.
        if items:
            await self.broker.publish(items)

    @staticmethod
    def _delete(conn: Connection, items: list[WorkItem]) -> None:
        if items:
            conn.execute(
                delete(work_items).where(
                    work_items.c.delivery_id.in_([i.delivery_id for i in items]),
                    work_items.c.state == WorkState.OUTBOX,
                )
            )
