"""One broker test suite, run against every transport (see ``backends.py``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.broker.base import Broker, WorkItem
from tests.contract.backends import BROKERS

LEASE = 1.0


@pytest.fixture(params=sorted(BROKERS))
async def broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Broker]:
    make_store, make_broker = BROKERS[request.param]
    async with make_store(tmp_path) as store, make_broker(store, LEASE) as b:
        yield b


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


async def test_unsettled_lease_comes_back(broker: Broker) -> None:
    (item,) = items(1)
    await broker.publish([item])
    (first,) = await drain(broker, 1)
    assert await broker.receive(1, wait=0.2) == []
    (again,) = await drain(broker, 1, wait=LEASE + 5)
    assert again.item == item and again.attempt == 2
    await broker.ack(again)


async def test_retry_waits_for_its_delay(broker: Broker) -> None:
    (item,) = items(1)
    await broker.publish([item])
    (lease,) = await drain(broker, 1)
    await broker.retry(lease, delay=0.6, reason="down")
    assert await broker.receive(1, wait=0.3) == []
    (again,) = await drain(broker, 1, wait=3)
    assert again.item == item and again.attempt == 2
    await broker.ack(again)


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


async def test_stale_ack_after_lease_expiry_does_not_drop_the_new_lease(broker: Broker) -> None:
    (item,) = items(1)
    await broker.publish([item])
    (old,) = await drain(broker, 1)
    (new,) = await drain(broker, 1, wait=LEASE + 5)
    await broker.ack(old)  # the first consumer finally answers: too late
    await broker.retry(new, delay=0, reason="x")
    (third,) = await drain(broker, 1)
    assert third.item == item
    await broker.ack(third)
