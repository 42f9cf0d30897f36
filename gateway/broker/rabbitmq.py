"""RabbitMQ transport (aio-pika): the broker of the scaled mode.

Topology, all names under a configurable prefix ``P`` and declared idempotently at start::

    P.work            direct exchange, routing key = destination name
    P.work.<dest>     quorum queue per destination: a slow Fachverfahren only fills its
                      own queue and its own prefetch window (no head-of-line blocking)
    P.delay           headers exchange, header ``delay-tier`` selects the tier queue
                      (not ``x-…``: headers exchanges ignore those when matching)
    P.delay.<ms>ms    quorum queue with ``x-message-ttl``; expired messages are dead-lettered
                      (at-least-once) back to ``P.work`` under their original routing key
    P.dead            quorum queue of dead letters, reason in the ``x-reason`` header

Messages are persistent and carry ids only (claim check). Every publish is mandatory and
awaits its publisher confirm with a timeout; a nack, a return (unroutable) or a timeout
raises ``Unavailable``, so the caller (the outbox relay) keeps the row and tries again.

A lease is an unacked message. Unlike the embedded queue it does not expire by time: it
comes back when the consumer's channel or connection closes (worker died, broker
restarted). The attempt number is ``x-attempts`` (settled attempts, set when we republish
for a retry) plus the quorum queue's ``x-delivery-count`` (unsettled ones) plus one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, cast

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from pamqp.common import FieldTable
from pydantic import BaseModel

from gateway.broker.base import DeadLetter, Lease, WorkItem
from gateway.errors import Unavailable
from gateway.store.states import WorkState

log = logging.getLogger("xoev_gateway.rabbitmq")

QUORUM: FieldTable = {"x-queue-type": "quorum"}
SETTLE_ERRORS = (aio_pika.exceptions.AMQPError, ConnectionError, OSError, RuntimeError)


class WorkMessage(BaseModel):
    """The body of every message: the claim check."""

    delivery_id: str
    destination: str


class RabbitBroker:
    work_state = WorkState.OUTBOX

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "xoev",
        prefetch: int = 8,
        confirm_timeout: float = 10.0,
        delay_tiers: Sequence[float] = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
        destinations: Callable[[], Iterable[str]] = lambda: (),
        watchdog_seconds: float = 5.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.prefetch = prefetch
        self.confirm_timeout = confirm_timeout
        self.tiers_ms = sorted({max(1, round(t * 1000)) for t in delay_tiers})
        self.destinations = destinations
        self.watchdog_seconds = watchdog_seconds
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._work: AbstractExchange | None = None
        self._delay: AbstractExchange | None = None
        self._declared: set[str] = set()
        self._published_to: set[str] = set()
        # Consuming side: one channel, one consumer per destination queue.
        self._consume_channel: AbstractChannel | None = None
        self._consumers: dict[str, tuple[AbstractQueue, str]] = {}
        self._consume_lock = asyncio.Lock()
        self._buffer: asyncio.Queue[tuple[int, AbstractIncomingMessage]] = asyncio.Queue()
        self._leased: dict[str, AbstractIncomingMessage] = {}
        self._generation = 0
        self._watchdog: asyncio.Task[None] | None = None

    # names -------------------------------------------------------------------------------

    def queue_name(self, destination: str) -> str:
        return f"{self.prefix}.work.{destination}"

    @property
    def dead_queue_name(self) -> str:
        return f"{self.prefix}.dead"

    def tier_for(self, delay: float) -> int:
        """The shortest tier that waits at least ``delay`` (else the longest tier)."""
        wanted = delay * 1000
        return next((t for t in self.tiers_ms if t >= wanted), self.tiers_ms[-1])

    # lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            self._connection = await aio_pika.connect_robust(
                self.url, reconnect_interval=1.0, timeout=10
            )
        except (aio_pika.exceptions.AMQPError, OSError, ConnectionError) as exc:
            raise Unavailable(f"RabbitMQ unreachable: {exc!r}") from None
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._publish_channel = channel
        self._work = await channel.declare_exchange(
            f"{self.prefix}.work", aio_pika.ExchangeType.DIRECT, durable=True
        )
        self._delay = await channel.declare_exchange(
            f"{self.prefix}.delay", aio_pika.ExchangeType.HEADERS, durable=True
        )
        for tier in self.tiers_ms:
            queue = await channel.declare_queue(
                f"{self.prefix}.delay.{tier}ms",
                durable=True,
                arguments={
                    **QUORUM,
                    "x-message-ttl": tier,
                    "x-dead-letter-exchange": self._work.name,
                    # at-least-once dead-lettering needs reject-publish overflow (RabbitMQ docs)
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
            )
            await queue.bind(self._delay, arguments={"x-match": "all", "delay-tier": str(tier)})
        await channel.declare_queue(self.dead_queue_name, durable=True, arguments=QUORUM)
        for destination in self.destinations():
            await self._declare_destination(destination)

    async def close(self) -> None:
        watchdog, self._watchdog = self._watchdog, None  # a later start() starts a new one
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        # Closing the consuming channel first hands every unacked and prefetched message
        # back to the broker: graceful shutdown releases what it did not finish.
        await self._close_consumers()
        if self._connection is not None:
            await self._connection.close()

    async def ping(self) -> None:
        if self._connection is None or not self._connection.connected.is_set():
            raise Unavailable("RabbitMQ connection is down")

    def notify(self) -> None:
        return None

    def _invalidate_leases(self, *_: Any) -> None:
        self._generation += 1
        self._leased.clear()
        while not self._buffer.empty():
            self._buffer.get_nowait()

    # publishing --------------------------------------------------------------------------

    async def _declare_destination(self, destination: str) -> None:
        if destination in self._declared:
            return
        assert self._publish_channel is not None and self._work is not None
        queue = await self._publish_channel.declare_queue(
            self.queue_name(destination), durable=True, arguments=QUORUM
        )
        await queue.bind(self._work, routing_key=destination)
        self._declared.add(destination)

    def _message(self, item: WorkItem, attempts: int, **headers: Any) -> aio_pika.Message:
        body = WorkMessage(delivery_id=item.delivery_id, destination=item.destination)
        return aio_pika.Message(
            body.model_dump_json().encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=item.delivery_id,
            headers={"x-attempts": attempts, **headers},
        )

    async def _confirmed(self, publishes: Sequence[Any]) -> None:
        """Await the publisher confirms of all ``publishes`` or raise ``Unavailable``."""
        try:
            async with asyncio.timeout(self.confirm_timeout):
                await asyncio.gather(*publishes)
        except TimeoutError:
            raise Unavailable(f"RabbitMQ did not confirm within {self.confirm_timeout}s") from None
        except aio_pika.exceptions.DeliveryError as exc:
            # Returned as unroutable (a queue vanished) or nacked: re-declare next time.
            self._declared.clear()
            raise Unavailable(f"RabbitMQ refused the message: {exc!r}") from None
        except (aio_pika.exceptions.AMQPError, OSError, ConnectionError, RuntimeError) as exc:
            raise Unavailable(f"RabbitMQ unavailable: {exc!r}") from None

    async def _to_work(self, items: Sequence[tuple[WorkItem, int]]) -> None:
        try:
            for destination in {item.destination for item, _ in items}:
                await self._declare_destination(destination)
        except (aio_pika.exceptions.AMQPError, OSError, ConnectionError, RuntimeError) as exc:
            raise Unavailable(f"RabbitMQ unavailable: {exc!r}") from None
        assert self._work is not None
        work = self._work
        await self._confirmed(
            [
                work.publish(self._message(item, attempts), item.destination, mandatory=True)
                for item, attempts in items
            ]
        )

    async def publish(self, items: Sequence[WorkItem]) -> None:
        if not items:
            return
        self._published_to.update(item.destination for item in items)
        await self._to_work([(item, 0) for item in items])

    async def _to_delay(self, item: WorkItem, attempts: int, delay: float, reason: str) -> None:
        if delay <= 0:
            await self._to_work([(item, attempts)])
            return
        # The destination queue must exist before the message comes back from the tier.
        await self._declare_queue_for(item.destination)
        assert self._delay is not None
        tier = self.tier_for(delay)
        message = self._message(item, attempts, **{"delay-tier": str(tier), "x-reason": reason})
        await self._confirmed([self._delay.publish(message, item.destination, mandatory=True)])

    async def _declare_queue_for(self, destination: str) -> None:
        try:
            await self._declare_destination(destination)
        except (aio_pika.exceptions.AMQPError, OSError, ConnectionError, RuntimeError) as exc:
            raise Unavailable(f"RabbitMQ unavailable: {exc!r}") from None

    # consuming ---------------------------------------------------------------------------

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._buffer.put_nowait((self._generation, message))

    async def _ensure_consumers(self) -> None:
        wanted = set(self.destinations()) | self._published_to
        if wanted <= self._consumers.keys() and self._consuming():
            return
        async with self._consume_lock:
            assert self._connection is not None
            if not self._consuming():
                self._consumers.clear()
                channel = await self._connection.channel()
                await channel.set_qos(prefetch_count=self.prefetch)
                self._consume_channel = channel
            assert self._consume_channel is not None
            for destination in sorted(wanted - self._consumers.keys()):
                queue = await self._consume_channel.declare_queue(
                    self.queue_name(destination), durable=True, arguments=QUORUM
                )
                tag = await queue.consume(self._on_message)
                self._consumers[destination] = (queue, tag)
        if self._watchdog is None:
            self._watchdog = asyncio.create_task(self._watch_consumers())

    def _consuming(self) -> bool:
        return self._consume_channel is not None and not self._consume_channel.is_closed

    async def _watch_consumers(self) -> None:
        """Re-consume when the server cancelled a consumer (queue deleted, node maintenance):
        such a consumer would otherwise sit silently idle."""
        while True:
            await asyncio.sleep(self.watchdog_seconds)
            try:
                await self._check_consumers()
            except Exception:
                log.warning("consumer watchdog: check failed; trying again", exc_info=True)

    async def _check_consumers(self) -> None:
        if self._connection is None or not self._connection.connected.is_set():
            return  # the robust connection reconnects and re-consumes by itself
        if self._consume_channel is None:
            return
        if self._consume_channel.is_closed:
            log.warning("consumer watchdog: consuming channel closed; reopening")
            await self._ensure_consumers()
            return
        underlay = cast(aiormq.Channel, await self._consume_channel.get_underlay_channel())
        live = underlay.consumers
        for destination, (queue, tag) in list(self._consumers.items()):
            if tag not in live:
                log.warning("consumer watchdog: consumer for %s was cancelled", destination)
                async with self._consume_lock:
                    self._consumers.pop(destination, None)
                    with contextlib.suppress(*SETTLE_ERRORS):
                        await queue.cancel(tag)
        await self._ensure_consumers()

    async def _close_consumers(self) -> None:
        async with self._consume_lock:
            channel, self._consume_channel = self._consume_channel, None
            self._consumers.clear()
            self._invalidate_leases()
            if channel is not None and not channel.is_closed:
                with contextlib.suppress(*SETTLE_ERRORS):
                    await channel.close()

    async def receive(self, max_items: int, wait: float) -> list[Lease]:
        try:
            await self._ensure_consumers()
        except (aio_pika.exceptions.AMQPError, OSError, ConnectionError, RuntimeError) as exc:
            log.warning("cannot consume from RabbitMQ yet: %r", exc)
            await asyncio.sleep(wait)
            return []
        leases: list[Lease] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                leases += self._lease(await self._buffer.get())
        while len(leases) < max_items and not self._buffer.empty():
            leases += self._lease(self._buffer.get_nowait())
        return leases

    @staticmethod
    def _stale(message: AbstractIncomingMessage) -> bool:
        """Received on a channel that has closed since (we closed it, or the connection was
        lost): the broker has taken the message back and delivers it again, and its
        delivery tag means nothing on the new channel."""
        return message.channel.is_closed

    def _lease(self, entry: tuple[int, AbstractIncomingMessage]) -> list[Lease]:
        generation, message = entry
        if generation != self._generation or self._stale(message):
            return []
        try:
            work = WorkMessage.model_validate_json(message.body)
        except ValueError:
            log.error("dropping a malformed message %r", message.message_id)
            asyncio.get_running_loop().create_task(message.reject(requeue=False))
            return []
        headers = message.headers or {}
        attempt = _int(headers.get("x-attempts")) + _int(headers.get("x-delivery-count")) + 1
        token = f"{generation}:{message.delivery_tag}"
        self._leased[token] = message
        return [Lease(WorkItem(work.delivery_id, work.destination), attempt, token)]

    def _take(self, lease: Lease) -> AbstractIncomingMessage | None:
        message = self._leased.pop(lease.token, None)
        if message is None or self._stale(message):
            log.info(
                "stale lease for %s (connection was lost): RabbitMQ redelivers it",
                lease.item.delivery_id,
            )
            return None
        return message

    async def _settle(self, message: AbstractIncomingMessage, lease: Lease) -> None:
        try:
            await message.ack()
        except SETTLE_ERRORS as exc:
            # The channel died after we received: the ack is void and the broker delivers
            # the message again; the worker absorbs it because the delivery is settled.
            log.info("ack of %s failed (%r): it will be redelivered", lease.item.delivery_id, exc)

    async def _republish_then_ack(
        self, lease: Lease, publish: Callable[[], Awaitable[None]]
    ) -> None:
        """Publish the follow-up (confirmed) before acking: a crash in between leaves a
        duplicate that the worker absorbs, never a loss."""
        message = self._take(lease)
        if message is None:
            return
        try:
            await publish()
        except Unavailable:
            with contextlib.suppress(*SETTLE_ERRORS):
                await message.nack(requeue=True)
            raise
        await self._settle(message, lease)

    async def renew(self, leases: Sequence[Lease]) -> list[Lease]:
        """Nothing to renew: RabbitMQ keeps an unacked message with its consumer for as
        long as the channel lives and redelivers it as soon as the connection is lost (a
        killed worker's items come back at once). Held are the leases whose channel is
        still the current one."""
        return [
            lease
            for lease in leases
            if (message := self._leased.get(lease.token)) is not None and not self._stale(message)
        ]

    async def ack(self, lease: Lease) -> None:
        message = self._take(lease)
        if message is not None:
            await self._settle(message, lease)

    async def retry(self, lease: Lease, delay: float, reason: str) -> None:
        await self._republish_then_ack(
            lease, lambda: self._to_delay(lease.item, lease.attempt, delay, reason)
        )

    async def release(self, lease: Lease, delay: float) -> None:
        await self._republish_then_ack(
            lease, lambda: self._to_delay(lease.item, lease.attempt - 1, delay, "released")
        )

    async def dead_letter(self, lease: Lease, reason: str) -> None:
        headers = {"x-reason": reason, "x-destination": lease.item.destination}
        message = self._message(lease.item, lease.attempt, **headers)
        assert self._publish_channel is not None
        exchange = self._publish_channel.default_exchange
        await self._republish_then_ack(
            lease,
            lambda: self._confirmed(
                [exchange.publish(message, self.dead_queue_name, mandatory=True)]
            ),
        )

    # dead letters ------------------------------------------------------------------------

    async def _drain_dead(self, channel: AbstractChannel) -> list[AbstractIncomingMessage]:
        """Take every dead letter unacked; closing ``channel`` puts back what is not acked."""
        queue = await channel.declare_queue(self.dead_queue_name, durable=True, arguments=QUORUM)
        taken: list[AbstractIncomingMessage] = []
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            taken.append(message)
        return taken

    async def dead_letters(self) -> list[DeadLetter]:
        assert self._connection is not None
        try:
            channel = await self._connection.channel()
            try:
                taken = await self._drain_dead(channel)
            finally:
                await channel.close()
        except SETTLE_ERRORS as exc:
            raise Unavailable(f"RabbitMQ unavailable: {exc!r}") from None
        letters = []
        for message in taken:
            work = WorkMessage.model_validate_json(message.body)
            headers = message.headers or {}
            letters.append(
                DeadLetter(
                    WorkItem(work.delivery_id, work.destination),
                    str(headers.get("x-reason", "")),
                    _int(headers.get("x-attempts")),
                )
            )
        return letters

    async def replay(self, delivery_ids: Sequence[str] | None = None) -> list[str]:
        assert self._connection is not None
        wanted = set(delivery_ids) if delivery_ids is not None else None
        replayed: list[str] = []
        try:
            channel = await self._connection.channel()
            try:
                for message in await self._drain_dead(channel):
                    work = WorkMessage.model_validate_json(message.body)
                    if wanted is not None and work.delivery_id not in wanted:
                        continue
                    # Republish first (confirmed), then remove the dead letter: a crash in
                    # between leaves a duplicate that the worker absorbs, never a loss.
                    await self.publish([WorkItem(work.delivery_id, work.destination)])
                    await message.ack()
                    replayed.append(work.delivery_id)
            finally:
                await channel.close()
        except SETTLE_ERRORS as exc:
            raise Unavailable(f"RabbitMQ unavailable: {exc!r}") from None
        return replayed


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else 0
