"""The broker interface that the embedded queue and the RabbitMQ transport both implement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.store.states import WorkState


@dataclass(frozen=True)
class WorkItem:
    """A claim check: the delivery to perform; the payload stays in the store."""

    delivery_id: str
    destination: str


@dataclass(frozen=True)
class Lease:
    """A received work item, owned by one consumer until acked, retried or dead-lettered."""

    item: WorkItem
    attempt: int
    token: str


@dataclass(frozen=True)
class DeadLetter:
    item: WorkItem
    reason: str
    attempts: int


class Broker(Protocol):
    """Contract (checked by ``tests/contract/test_broker_contract.py`` for every transport):

    - ``publish`` returns only when the items are durable (committed / confirmed);
    - ``receive`` hands out each ready item to one consumer at a time; an item whose lease
      is not settled (consumer crashed) becomes available again;
    - ``ack`` removes an item; ``retry`` makes it available again after ``delay`` seconds;
      ``dead_letter`` parks it with a reason until ``replay``;
    - ``release`` gives an item back after ``delay`` without counting the attempt (the
      trouble was ours, e.g. the store was down, not the destination's);
    - ``renew`` keeps leases while their deliveries run and returns those still held; a
      lease not among them is no longer the caller's (another consumer may have it);
    - ``attempt`` counts deliveries of an item, replay resets it;
    - settling a lease that is no longer the current one (it expired, or the connection it
      came on was lost) changes nothing: the item is, or will be, handed out again.
    """

    work_state: WorkState
    """How the store writes work items in the accept transaction: ``READY`` when the store's
    table is the queue itself (embedded), ``OUTBOX`` when a relay publishes them."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None: ...

    async def publish(self, items: Sequence[WorkItem]) -> None: ...

    async def receive(self, max_items: int, wait: float) -> list[Lease]: ...

    async def renew(self, leases: Sequence[Lease]) -> list[Lease]: ...

    async def ack(self, lease: Lease) -> None: ...

    async def retry(self, lease: Lease, delay: float, reason: str) -> None: ...

    async def release(self, lease: Lease, delay: float) -> None: ...

    async def dead_letter(self, lease: Lease, reason: str) -> None: ...

    async def dead_letters(self) -> list[DeadLetter]: ...

    async def replay(self, delivery_ids: Sequence[str] | None = None) -> list[str]: ...

    def notify(self) -> None:
        """Hint that new ready items exist (same process); consumers may wake early."""
