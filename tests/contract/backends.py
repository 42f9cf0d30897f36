"""The store and broker implementations every contract test runs against.

Each entry is an async context manager factory; the real-service ones (PostgreSQL,
RabbitMQ) get a unique database / topology per test and are marked ``services``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.broker.base import Broker
from gateway.broker.embedded import EmbeddedQueue
from gateway.broker.rabbitmq import RabbitBroker
from gateway.store.database import Database
from gateway.store.migrate import migrate
from gateway.store.store import Store
from tests.support.services import postgres_database, unique

# Short delay tiers so that retries in tests take fractions of a second.
TEST_TIERS = (0.3, 0.6, 1.0, 2.0, 4.0)


@asynccontextmanager
async def sqlite_database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database.open(f"sqlite:///{tmp_path / 'gateway.db'}")
    try:
        await migrate(db)
        yield db
    finally:
        await db.close()


@asynccontextmanager
async def postgres_database_migrated(tmp_path: Path) -> AsyncIterator[Database]:
    async with postgres_database() as url:
        db = Database.open(url)
        try:
            await migrate(db)
            yield db
        finally:
            await db.close()


def store_on(
    database: Callable[[Path], AbstractAsyncContextManager[Database]],
) -> Callable[[Path], AbstractAsyncContextManager[Store]]:
    @asynccontextmanager
    async def store(tmp_path: Path) -> AsyncIterator[Store]:
        async with database(tmp_path) as db:
            s = Store(db)
            try:
                yield s
            finally:
                await s.close()

    return store


@dataclass(frozen=True)
class BrokerContext:
    lease_seconds: float
    amqp_url: Callable[[], str]
    """The per-run RabbitMQ vhost; a callable so that only RabbitMQ tests create it."""


@asynccontextmanager
async def embedded_broker(db: Database, ctx: BrokerContext) -> AsyncIterator[Broker]:
    broker = EmbeddedQueue(db, lease_seconds=ctx.lease_seconds)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.close()


@asynccontextmanager
async def rabbitmq_broker(db: Database, ctx: BrokerContext) -> AsyncIterator[Broker]:
    """A topology of its own (unique prefix) in the run's vhost; the database is unused by
    the broker itself but is PostgreSQL, as in the scaled mode."""
    broker = RabbitBroker(ctx.amqp_url(), prefix=unique("t"), prefetch=8, delay_tiers=TEST_TIERS)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.close()


async def lease_expires_by_time(broker: Any) -> None:
    """The embedded queue's leases expire by time: the tests' waits cover it."""


async def consumer_connection_closes(broker: Any) -> None:
    """RabbitMQ hands unacked messages out again once their consumer's connection is gone,
    as when a worker dies; the same broker object then goes on as the next worker."""
    assert isinstance(broker, RabbitBroker)
    await broker.close()
    await broker.start()


@dataclass(frozen=True)
class BrokerBackend:
    database: Callable[[Path], Any]
    broker: Callable[[Database, BrokerContext], Any]
    crash_consumer: Callable[[Any], Awaitable[None]]
    """Make unsettled leases come back as if the consumer had died."""
    services: bool = False


STORES: dict[str, tuple[Callable[[Path], Any], bool]] = {
    "sqlite": (store_on(sqlite_database), False),
    "postgresql": (store_on(postgres_database_migrated), True),
}
BROKERS: dict[str, BrokerBackend] = {
    "embedded": BrokerBackend(sqlite_database, embedded_broker, lease_expires_by_time),
    "rabbitmq": BrokerBackend(
        postgres_database_migrated, rabbitmq_broker, consumer_connection_closes, services=True
    ),
}
