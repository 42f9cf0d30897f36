"""The store and broker implementations every contract test runs against.

Issue: add PostgreSQL and RabbitMQ here; each test in this folder then runs on them too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from gateway.broker.base import Broker
from gateway.broker.embedded import EmbeddedQueue
from gateway.store.store import Store


@asynccontextmanager
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def embedded_broker(store: Store, lease_seconds: float) -> AsyncIterator[Broker]:
    broker = EmbeddedQueue(store.engine, lease_seconds=lease_seconds)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.close()


STORES = {"sqlite": sqlite_store}
BROKERS = {"embedded": (sqlite_store, embedded_broker)}
