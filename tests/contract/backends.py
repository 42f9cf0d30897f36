"""The store and broker implementations every contract test runs against.

Each entry is an async context manager factory; the real-service ones (PostgreSQL,
RabbitMQ) get a unique database / topology per test and are marked ``services``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.broker.base import Broker
from gateway.broker.embedded import EmbeddedQueue
from gateway.store.store import Store
from tests.support.services import postgres_database


@asynccontextmanager
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def postgres_store(tmp_path: Path) -> AsyncIterator[Store]:
    async with postgres_database() as url:
        store = Store.from_url(url)
        try:
            await store.migrate()
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


async def lease_expires_by_time(broker: Any) -> None:
    """The embedded queue's leases expire by time: the tests' waits cover it."""


@dataclass(frozen=True)
class BrokerBackend:
    store: Callable[[Path], Any]
    broker: Callable[[Store, float], Any]
    crash_consumer: Callable[[Any], Awaitable[None]]
    """Make unsettled leases come back as if the consumer had died."""
    services: bool = False


STORES: dict[str, tuple[Callable[[Path], Any], bool]] = {
    "sqlite": (sqlite_store, False),
    "postgresql": (postgres_store, True),
}
BROKERS: dict[str, BrokerBackend] = {
    "embedded": BrokerBackend(sqlite_store, embedded_broker, lease_expires_by_time),
}
