"""One broker test suite, run against every transport (see ``backends.py``)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from gateway.broker.base import Broker, WorkItem
from tests.contract.backends import BROKERS, BrokerBackend, BrokerContext

LEASE = 1.0
TIMER_SLACK = 0.05  # RabbitMQ's TTL timer and ours are not the same clock


@pytest.fixture(
    params=[
        pytest.param(name, marks=[pytest.mark.services] if backend.services else [])
        for name, backend in sorted(BROKERS.items())
    ]
)
def backend(request: pytest.FixtureRequest) -> BrokerBackend:
    return BROKERS[request.param]


@pytest.fixture
async def broker(
    backend: BrokerBackend, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Broker]:
    ctx = BrokerContext(LEASE, lambda: str(request.getfixturevalue("amqp_url")))
    async with backend.database(tmp_path) as db, backend.broker(db, ctx) as b:
        yield b


@pytest.fixture
def crash_consumer(backend: BrokerBackend, broker: Broker) -> Callable[[], Awaitable[None]]:
    """What a dead consumer leaves behind: unsettled leases become available again (the
    embedded queue by lease expiry, RabbitMQ when the consumer's channel closes)."""
    return lambda: backend.crash_consumer(broker)


def items(n: int, destination: str = "d") -> list[WorkItem]:
    return [WorkItem(str(uuid.uuid4()), destination) for _ in range(n)]


async def drain(broker: Broker, expected: int, wait: float = 5.0) -> list:  # type: ignore[type-arg]
    got: list = []  # type: ignore[type-arg]
    deadline = asyncio.get_running_loop().time() + wait
    while len(got) < expected and asyncio.get_running_loop().time() < deadline:
        got += await broker.receive(expected - len(got), wait=0.5)
    return got


async def test_published_items_are_received_once_and_acked(broker: Broker) -> None:
    published = items(5)
    await broker.publish(published)
    leases = await drain(broker, 5)
    assert sorted(lease.item.delivery_id for lease in leases) == sorted(
        i.delivery_id for i in published
    )
    assert {lease.attempt for lease in leases} == {1}
    for lease in leases:
        await broker.ack(lease)
    assert await broker.receive(10, wait=LEASE + 0.5) == []


async def test_unsettled_lease_comes_back(
    broker: Broker, crash_consumer: Callable[[], Awaitable[None]]
) -> None:
    (item,) = items(1)
    await broker.publish([item])
    (first,) = await drain(broker, 1)
    assert await broker.receive(1, wait=0.2) == []
    await crash_consumer()
    (again,) = await drain(broker, 1, wait=LEASE + 5)
    assert again.item == item and again.attempt == 2
    await broker.ack(again)


async def test_retry_waits_for_its_delay(broker: Broker) -> None:
    (item,) = items(1)
    await broker.publish([item])
    (lease,) = await drain(broker, 1)
    # Measured from before the call: a slow confirm must not count as waiting time.
    started = time.monotonic()
    await broker.retry(lease, delay=0.6, reason="down")
    (again,) = await drain(broker, 1, wait=3)
    assert time.monotonic() - started >= 0.6 - TIMER_SLACK
    assert again.item == item and again.attempt == 2
    await broker.ack(again)
    assert await broker.receive(1, wait=1.5) == []  # one retry, not one per delay tier


async def test_dead_letters_are_listed_and_replayed(broker: Broker) -> None:
    dead, ok = items(2)
    await broker.publish([dead, ok])
    leases = {lease.item.delivery_id: lease for lease in await drain(broker, 2)}
    await broker.dead_letter(leases[dead.delivery_id], "Fachverfahren refused")
    await broker.ack(leases[ok.delivery_id])
    (letter,) = await broker.dead_letters()
    assert letter.item == dead and letter.reason == "Fachverfahren refused"
    assert await broker.replay([dead.delivery_id]) == [dead.delivery_id]
    assert await broker.dead_letters() == []
    (again,) = await drain(broker, 1)
    assert again.item == dead and again.attempt == 1
    await broker.ack(again)


async def test_stale_ack_after_lease_expiry_does_not_drop_the_new_lease(
    broker: Broker, crash_consumer: Callable[[], Awaitable[None]]
) -> None:
    (item,) = items(1)
    await broker.publish([item])
    (old,) = await drain(broker, 1)
    await crash_consumer()
    (new,) = await drain(broker, 1, wait=LEASE + 5)
    await broker.ack(old)  # the first consumer finally answers: too late
    await broker.retry(new, delay=0, reason="x")
    (third,) = await drain(broker, 1)
    assert third.item == item
    await broker.ack(third)


async def test_renewed_lease_is_kept_past_its_time_and_a_lost_one_is_not_renewed(
    broker: Broker, crash_consumer: Callable[[], Awaitable[None]]
) -> None:
    kept, lost = items(2)
    await broker.publish([kept])
    (lease,) = await drain(broker, 1)
    for _ in range(4):  # two lease times, renewed every third of one
        await asyncio.sleep(LEASE / 2)
        assert await broker.renew([lease]) == [lease]
    assert await broker.receive(1, wait=0.2) == []  # nobody else got it meanwhile
    await broker.ack(lease)

    await broker.publish([lost])
    (old,) = await drain(broker, 1)
    await crash_consumer()
    (new,) = await drain(broker, 1, wait=LEASE + 5)
    assert await broker.renew([old]) == []  # taken over: no longer the first holder's
    assert await broker.renew([new]) == [new]
    await broker.ack(new)


async def test_release_gives_back_without_counting_an_attempt(broker: Broker) -> None:
    (item,) = items(1)
    await broker.publish([item])
    (lease,) = await drain(broker, 1)
    started = time.monotonic()
    await broker.release(lease, delay=0.6)
    (again,) = await drain(broker, 1, wait=3)
    assert time.monotonic() - started >= 0.6 - TIMER_SLACK
    assert again.item == item and again.attempt == 1
    await broker.ack(again)


async def test_items_for_several_destinations_all_arrive(broker: Broker) -> None:
    published = items(3, "a") + items(3, "b")
    await broker.publish(published)
    leases = await drain(broker, 6)
    assert sorted((lease.item.destination, lease.item.delivery_id) for lease in leases) == sorted(
        (i.destination, i.delivery_id) for i in published
    )
    for lease in leases:
        await broker.ack(lease)
