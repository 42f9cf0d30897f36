"""The worker: takes work items from the broker and delivers them through adapters.

A work item is acknowledged only after the adapter returned a receipt and the receipt is
recorded, so a crash anywhere means a redelivery (at-least-once); the stable delivery id
lets adapters absorb it, and a delivery already recorded as delivered is just acked.

While deliveries run, a heartbeat renews their leases every third of ``lease_seconds``
(embedded queue); an item whose lease could not be kept (renewal refused, or the store
unreachable until the lease ran out) is no longer this worker's: its delivery is
cancelled and left to whoever claims it next.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from gateway.broker.base import Broker, Lease
from gateway.errors import GatewayError, Unavailable
from gateway.intake.safe_xml import parse_untrusted
from gateway.mapping.apply import Payload
from gateway.routing.config import Destination, GatewayConfig
from gateway.sdk import (
    Adapter,
    Attachment,
    Delivery,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from gateway.store.blobs import BlobStore
from gateway.store.records import DeliveryJob
from gateway.store.states import DeliveryState
from gateway.store.store import Attempt, Store
from gateway.telemetry import traces
from gateway.telemetry.logs import fields
from gateway.telemetry.metrics import ATTEMPT_SECONDS, DELIVERIES

log = logging.getLogger("xoev_gateway.worker")

REASON_CHARS = 500
"""An adapter's reason is logged up to this long (the store keeps it whole)."""


def _ids(job: DeliveryJob, lease: Lease, config_version: str | None = None) -> dict[str, object]:
    """The fields of a delivery's log lines: ids and configured names, no payload values."""
    return {
        "delivery_id": job.delivery_id,
        "submission_id": job.submission_id,
        "message_uuid": job.message_uuid,
        "destination": job.destination,
        "municipality": job.municipality,
        "service": job.message_type,
        "attempt": lease.attempt,
        "config_version": config_version,
    }


def backoff_delay(attempt: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter; a server's Retry-After is a lower bound."""
    delay = random.uniform(0, min(cap, base * 2 ** (attempt - 1)))  # noqa: S311 - not crypto
    delay = max(delay, base / 2)
    return max(delay, retry_after) if retry_after is not None else delay


class AdapterPool:
    """One adapter instance per destination, rebuilt when the configuration changes."""

    def __init__(self) -> None:
        self._adapters: dict[str, tuple[Destination, Adapter[Any]]] = {}

    def get(self, destination: Destination) -> Adapter[Any]:
        cached = self._adapters.get(destination.name)
        if cached is not None and cached[0] == destination:
            return cached[1]
        adapter: Adapter[Any] = destination.adapter_class(destination.settings)
        self._adapters[destination.name] = (destination, adapter)
        return adapter

    async def close(self) -> None:
        for _, adapter in self._adapters.values():
            await adapter.aclose()
        self._adapters.clear()


@dataclass
class _Held:
    """A lease this worker holds while its delivery runs."""

    lease: Lease
    task: asyncio.Task[None]
    expires: float
    """Event-loop time after which the broker may have handed the item to someone else."""


class Worker:
    def __init__(
        self,
        store: Store,
        broker: Broker,
        blobs: BlobStore,
        config: Callable[[], GatewayConfig],
        concurrency: int = 16,
        poll_seconds: float = 1.0,
        lease_seconds: float | None = None,
    ) -> None:
        """``lease_seconds``: the broker's lease, renewed every third of it while a delivery
        runs; ``None`` for a broker whose leases last as long as the connection (RabbitMQ)."""
        self.store = store
        self.broker = broker
        self.blobs = blobs
        self.config = config
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.adapters = AdapterPool()
        self._stopping = asyncio.Event()
        self._in_flight = 0
        self._claim_batch = max(1, concurrency // 2)
        self._slot_freed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: dict[tuple[str, str], _Held] = {}

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Consume until ``stop``; then let in-flight deliveries finish."""
        heartbeat = (
            asyncio.create_task(self._heartbeat(self.lease_seconds))
            if self.lease_seconds is not None
            else None
        )
        outage: str | None = None
        try:
            while not self._stopping.is_set():
                free = self.concurrency - self._in_flight
                # Claim in batches: each claim is a write (a commit) of its own, so taking
                # one item per freed slot would cost a commit per delivery under load.
                if free == 0 or (free < self._claim_batch and self._in_flight > 0):
                    self._slot_freed.clear()
                    await self._slot_freed.wait()
                    continue
                try:
                    leases = await self.broker.receive(free, wait=self.poll_seconds)
                except Unavailable as exc:
                    if exc.detail != outage:  # once per outage, not once per poll
                        log.warning("receiving work failed (%s); retrying", exc.detail)
                        outage = exc.detail
                    await asyncio.sleep(self.poll_seconds)
                    continue
                except Exception:
                    log.exception("receiving work failed; retrying shortly")
                    await asyncio.sleep(self.poll_seconds)
                    continue
                outage = None
                claimed = asyncio.get_running_loop().time()
                jobs = await self._jobs(leases)
                for lease in leases:
                    self._in_flight += 1
                    task = asyncio.create_task(self._run_one(lease, jobs))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                    if self.lease_seconds is not None:
                        key = (lease.item.delivery_id, lease.token)
                        self._held[key] = _Held(lease, task, claimed + self.lease_seconds)
                        task.add_done_callback(partial(self._forget, key))
        finally:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            if heartbeat is not None:
                heartbeat.cancel()
                await asyncio.gather(heartbeat, return_exceptions=True)
            await self.adapters.close()

    async def _heartbeat(self, lease_seconds: float) -> None:
        """Renew the leases of the deliveries in flight, all in one write, every third of a
        lease: two renewals may fail before another worker can take an item."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(lease_seconds / 3)
            held = list(self._held.values())
            if not held:
                continue
            started = loop.time()
            try:
                kept = await self.broker.renew([h.lease for h in held])
            except Exception as exc:
                detail = exc.detail if isinstance(exc, GatewayError) else repr(exc)
                log.warning("renewing %d leases failed: %s", len(held), detail)
                now = loop.time()
                for h in held:
                    if h.expires <= now:
                        self._let_go(h, "its lease ran out while the store was unreachable")
                continue
            renewed = {(lease.item.delivery_id, lease.token) for lease in kept}
            for h in held:
                if (h.lease.item.delivery_id, h.lease.token) in renewed:
                    h.expires = started + lease_seconds
                else:
                    self._let_go(h, "its lease was lost")

    def _forget(self, key: tuple[str, str], _task: asyncio.Task[None]) -> None:
        self._held.pop(key, None)

    def _let_go(self, held: _Held, why: str) -> None:
        key = (held.lease.item.delivery_id, held.lease.token)
        if self._held.pop(key, None) is None or held.task.done():
            return  # settled meanwhile
        log.warning(
            "%s is no longer this worker's (%s): delivery cancelled, the next claim delivers it",
            held.lease.item.delivery_id,
            why,
        )
        held.task.cancel()

    async def _jobs(self, leases: list[Lease]) -> dict[str, DeliveryJob | None] | None:
        """The claimed batch's jobs in one read (one read per delivery was ~14 ms of
        queueing under load); ``None`` makes each delivery read its own."""
        if not leases:
            return {}
        try:
            return await self.store.jobs([lease.item.delivery_id for lease in leases])
        except Exception:
            # Never out of the receive loop: each delivery then reads its own job and
            # meets the problem itself (an outage releases it, anything else retries).
            log.warning("reading a batch of %d jobs failed; one by one", len(leases))
            return None

    async def _run_one(self, lease: Lease, jobs: dict[str, DeliveryJob | None] | None) -> None:
        try:
            if jobs is None or lease.item.delivery_id not in jobs:
                job = await self.store.job(lease.item.delivery_id)
            else:
                job = jobs.pop(lease.item.delivery_id)
            await self.process(lease, job)
        except Unavailable as exc:
            # Our store (or broker) is down, not the destination: hand the item back
            # without spending one of its attempts.
            log.warning("%s: %s; released for later", lease.item.delivery_id, exc.detail)
            await self._give_back(lease, None)
        except Exception as exc:
            log.exception("processing %s failed", lease.item.delivery_id)
            await self._give_back(lease, f"{type(exc).__name__}: {exc}")
        finally:
            self._in_flight -= 1
            self._slot_freed.set()

    async def _give_back(self, lease: Lease, problem: str | None) -> None:
        # If this fails too, nothing is lost: the lease expires (embedded) or the broker
        # redelivers when the channel closes (RabbitMQ).
        if problem is None:
            # Our store is down, not the destination: come back in a few seconds, whatever
            # the attempt count. Backing off by attempts (which redeliveries after a broker
            # restart inflate) sent items away for minutes after a 2 s database outage.
            delay = backoff_delay(1, 5 * self.poll_seconds, 300.0)
        else:
            delay = backoff_delay(lease.attempt, self.poll_seconds, 300.0)
        try:
            if problem is None:
                await self.broker.release(lease, delay)
            else:
                await self.broker.retry(lease, delay, problem)
        except Exception as exc:
            log.warning("could not give %s back (%r)", lease.item.delivery_id, exc)

    async def process(self, lease: Lease, job: DeliveryJob | None) -> None:
        if job is None or not traces.enabled():
            await self._process(lease, job)
            return
        # Continues the submission's trace (its accept stored the context: claim check).
        attributes: dict[str, str | int] = {
            "xoev.delivery_id": job.delivery_id,
            "xoev.submission_id": job.submission_id,
            "xoev.destination": job.destination,
            "xoev.municipality": job.municipality,
            "xoev.attempt": lease.attempt,
        }
        with traces.span("delivery", attributes, parent=job.traceparent):
            await self._process(lease, job)

    async def _process(self, lease: Lease, job: DeliveryJob | None) -> None:
        if job is None or job.state != DeliveryState.PENDING:
            # Unknown (e.g. erased) or already settled: a duplicate to absorb.
            await self.broker.ack(lease)
            return
        config = self.config()
        destination = config.destinations.get(job.destination)
        if destination is None:
            reason = f"destination '{job.destination}' is no longer configured"
            await self.store.record_dead(job, reason)
            await self.broker.dead_letter(lease, reason)
            self._log_dead(job, lease, config.version, "unconfigured-destination", reason)
            return
        if job.xml is None:
            reason = "the submission's payload was erased before delivery"
            await self.store.record_dead(job, reason)
            await self.broker.dead_letter(lease, reason)
            self._log_dead(job, lease, config.version, "payload-erased", reason)
            return
        # The attempt is recorded together with its outcome: one write per delivery.
        attempt = Attempt(lease.attempt, config.version)
        try:
            payload = self._payload(config, job)
        except GatewayError as exc:
            # The stored XML was valid at intake; a mapping that cannot take it will not
            # take it on the next attempt either: dead-letter, replay after fixing the config.
            # Logged by its problem type only: mapping errors quote the message's values.
            await self._dead(
                job,
                lease,
                attempt,
                f"mapping (config {config.version}): {exc.detail}",
                cause=exc.slug,
                logged_reason=f"the mapping refused the message ({exc.slug})",
            )
            return
        log.info(
            "delivery attempt %d to %s",
            lease.attempt,
            destination.name,
            extra=fields(
                event="delivery.attempt",
                adapter=destination.adapter,
                **_ids(job, lease, attempt.config_version),
            ),
        )
        started = time.perf_counter()
        try:
            adapter = self.adapters.get(destination)
            with traces.span("adapter.deliver", {"xoev.adapter": destination.adapter}):
                try:
                    receipt = await asyncio.wait_for(
                        adapter.deliver(self._delivery(job, lease, payload)),
                        timeout=destination.timeout_seconds,
                    )
                finally:
                    elapsed = time.perf_counter() - started
                    ATTEMPT_SECONDS.labels(destination.adapter).observe(elapsed)
        except PermanentDeliveryError as exc:
            await self._dead(job, lease, attempt, f"permanent: {exc}", cause="permanent")
            return
        except TimeoutError:
            await self._transient(
                job,
                lease,
                attempt,
                destination,
                f"timed out after {destination.timeout_seconds}s",
                None,
            )
            return
        except TransientDeliveryError as exc:
            await self._transient(job, lease, attempt, destination, str(exc), exc.retry_after)
            return
        except Exception as exc:  # anything else counts as transient (adapter contract)
            await self._transient(
                job, lease, attempt, destination, f"{type(exc).__name__}: {exc}", None
            )
            return
        await self.store.record_delivered(job, receipt.reference, receipt.message, attempt)
        await self.broker.ack(lease)
        DELIVERIES.labels(job.destination, "delivered").inc()
        log.info(
            "delivered to %s",
            job.destination,
            extra=fields(
                event="delivery.delivered",
                adapter=destination.adapter,
                **_ids(job, lease, attempt.config_version),
            ),
        )

    async def _transient(
        self,
        job: DeliveryJob,
        lease: Lease,
        attempt: Attempt,
        destination: Destination,
        problem: str,
        retry_after: float | None,
    ) -> None:
        if lease.attempt >= destination.max_attempts:
            await self._dead(
                job,
                lease,
                attempt,
                f"gave up after {lease.attempt} attempts: {problem}",
                cause="attempts-exhausted",
            )
            return
        delay = backoff_delay(
            lease.attempt,
            destination.backoff_base_seconds,
            destination.backoff_max_seconds,
            retry_after,
        )
        await self.store.record_retry(job, problem, delay, attempt)
        await self.broker.retry(lease, delay, problem)
        DELIVERIES.labels(job.destination, "retry").inc()
        log.warning(
            "retry scheduled in %.1f s",
            delay,
            extra=fields(
                event="delivery.retry",
                delay_seconds=round(delay, 3),
                reason=problem[:REASON_CHARS],
                **_ids(job, lease, attempt.config_version),
            ),
        )

    async def _dead(
        self,
        job: DeliveryJob,
        lease: Lease,
        attempt: Attempt,
        reason: str,
        *,
        cause: str,
        logged_reason: str | None = None,
    ) -> None:
        await self.store.record_dead(job, reason, attempt)
        await self.broker.dead_letter(lease, reason)
        self._log_dead(job, lease, attempt.config_version, cause, logged_reason or reason)

    def _log_dead(
        self, job: DeliveryJob, lease: Lease, config_version: str | None, cause: str, reason: str
    ) -> None:
        DELIVERIES.labels(job.destination, "dead").inc()
        log.error(
            "dead: %s",
            cause,
            extra=fields(
                event="delivery.dead",
                cause=cause,
                reason=reason[:REASON_CHARS],
                **_ids(job, lease, config_version),
            ),
        )

    def _payload(self, config: GatewayConfig, job: DeliveryJob) -> Payload | None:
        if (
            job.xml is None
            or config.mappings.effective(job.municipality, job.message_type, job.destination)
            is None
        ):
            return None
        tree = parse_untrusted(job.xml)
        return config.mappings.payload(job.municipality, job.message_type, job.destination, tree)

    def _delivery(self, job: DeliveryJob, lease: Lease, payload: Payload | None) -> Delivery:
        assert job.xml is not None
        return Delivery(
            delivery_id=job.delivery_id,
            submission_id=job.submission_id,
            message_uuid=job.message_uuid,
            message_type=job.message_type,
            municipality=job.municipality,
            sender=job.sender,
            destination=job.destination,
            attempt=lease.attempt,
            xml=job.xml,
            payload=payload.data if payload is not None else None,
            payload_format=payload.format if payload is not None else None,
            payload_body=payload.body if payload is not None else None,
            attachments=tuple(
                Attachment(
                    a.name,
                    a.content_type,
                    a.sha256,
                    a.size,
                    Path(self.blobs.path(a.sha256)),
                    file_name=a.file_name,
                )
                for a in job.attachments
            ),
        )
