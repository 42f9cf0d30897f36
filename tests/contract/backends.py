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
from gateway.broker.rabbitmq import RabbitBroker
from gateway.store.store import Store
from tests.support.services import postgres_database, unique

# Short delay tiers so that retries in tests take fractions of a second.
TEST_TIERS = (0.3, 0.6, 1.0, 2.0, 4.0)


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


@dataclass(frozen=True)
class BrokerContext:
    lease_seconds: float
    amqp_url: Callable[[], str]
    """The per-run RabbitMQ vhost; a callable so that only RabbitMQ tests create it."""


@asynccontextmanager
async def embedded_broker(store: Store, ctx: BrokerContext) -> AsyncIterator[Broker]:
    broker = EmbeddedQueue(store.engine, lease_seconds=ctx.lease_seconds)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.close()


@asynccontextmanager
async def rabbitmq_broker(store: Store, ctx: BrokerContext) -> AsyncIterator[Broker]:
    """A topology of its own (unique prefix) in the run's vhost; the store is unused by the
    broker itself but is PostgreSQL, as in the scaled mode."""
    broker = RabbitBroker(ctx.amqp_url(), prefix=unique("t"), prefetch=8, delay_tiers=TEST_TIERS)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.close()


async def lease_expires_by_time(broker: Any) -> None:
    """The embedded queue's leases expire by time: the tests' waits cover it."""


async def consumer_channel_closes(broker: Any) -> None:
    """RabbitMQ hands unacked messages out again once their consumer's channel is gone."""
    assert isinstance(broker, RabbitBroker)
    await broker.release_unacked()


@dataclass(frozen=True)
class BrokerBackend:
    store: Callable[[Path], Any]
    broker: Callable[[Store, BrokerContext], Any]
    crash_consumer: Callable[[Any], Awaitable[None]]
    """Make unsettled leases come back as if the consumer had died."""
    services: bool = False


STORES: dict[str, tuple[Callable[[Path], Any], bool]] = {
    "sqlite": (sqlite_store, False),
    "postgresql": (postgres_store, True),
}
BROKERS: dict[str, BrokerBackend] = {
    "embedded": BrokerBackend(sqlite_store, embedded_broker, lease_expires_by_time),
    "rabbitmq": BrokerBackend(
        postgres_store, rabbitmq_broker, consumer_channel_closes, services=True
    ),
}
