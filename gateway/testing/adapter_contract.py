"""Contract test kit for adapters: any adapter package runs it in its own pytest suite.

It runs the adapter under the real worker (:class:`gateway.worker.Worker`, the embedded
queue and a SQLite store in a temp directory) against a real target that the adapter author
provides, and checks what the worker relies on:

- a delivery ends ``delivered`` with the adapter's :class:`~gateway.sdk.Receipt`;
- the same delivery id delivered twice creates one case at the target;
- a transient failure is retried and then delivered; a permanent one is dead-lettered;
- a hung target is cut off by the worker's timeout and retried (the adapter must survive
  cancellation).

Usage (needs ``pytest`` and ``pytest-asyncio``)::

    from gateway.testing.adapter_contract import AdapterContract, ContractTarget

    class TestMyAdapter(AdapterContract):
        adapter = "my-fachverfahren"          # entry-point name, import path or class

        @pytest.fixture
        def target(self, tmp_path) -> Iterator[ContractTarget]:
            with start_my_test_server(tmp_path) as server:
                yield MyTarget(server)

:class:`WorkerHarness` is the same machinery for an adapter's own further tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal, Protocol

import pytest

from gateway.adapter_registry import AdapterClass, load_adapter_class
from gateway.broker.embedded import EmbeddedQueue
from gateway.routing.config import Destination, GatewayConfig
from gateway.sdk import Adapter, AdapterSettings, Delivery, Receipt, TransientDeliveryError
from gateway.store.blobs import BlobStore
from gateway.store.database import Database
from gateway.store.migrate import migrate
from gateway.store.records import AttachmentRecord, NewDelivery, NewSubmission
from gateway.store.states import DeliveryState
from gateway.store.store import Store
from gateway.worker import Worker

FaultMode = Literal["transient", "permanent", "hang"]

DESTINATION = "contract-target"

SAMPLE_XML = """<?xml version="1.0" encoding="UTF-8"?>
<!-- Fictitious sample data: persons and accounts are invented. -->
<hs:hundesteuer.anmeldung.0101 xmlns:hs="https://xoev-gateway.de/schemata/hundesteuer/1_0"
    xmlns:xgb="https://xoev-gateway.de/schemata/basis/1_0">
  <xgb:nachrichtenkopf.g2g>
    <xgb:identifikation.nachricht>
      <xgb:nachrichtenUUID>{uuid}</xgb:nachrichtenUUID>
    </xgb:identifikation.nachricht>
    <xgb:leser><xgb:kennung>ags:08111000</xgb:kennung></xgb:leser>
  </xgb:nachrichtenkopf.g2g>
  <hs:halter>
    <hs:person>
      <xgb:familienname>Weidmann</xgb:familienname>
      <xgb:vorname>Katharina</xgb:vorname>
    </hs:person>
  </hs:halter>
  <hs:hund><hs:name>Bruno</hs:name></hs:hund>
</hs:hundesteuer.anmeldung.0101>
"""


class ContractTarget(Protocol):
    """The Fachverfahren (a real one in a test instance, or a faithful stand-in) under test."""

    def settings(self) -> Mapping[str, Any]:
        """The adapter settings (as in a route's config) that deliver to this target."""
        ...

    async def count_cases(self) -> int:
        """How many distinct cases the target holds now."""
        ...

    async def fail(self, mode: FaultMode, count: int) -> None:
        """Make the next ``count`` deliveries fail: ``transient`` (e.g. HTTP 503),
        ``permanent`` (e.g. HTTP 422) or ``hang`` (accept the connection, never answer in
        time)."""
        ...


@dataclass(frozen=True)
class Outcome:
    """How one delivery ended, as the store recorded it."""

    delivery_id: str
    state: DeliveryState
    attempts: int
    receipt: Receipt | None
    problem: str | None
    events: list[str]


class WorkerHarness:
    """The real worker on the embedded queue + SQLite in ``directory``, one destination."""

    def __init__(
        self,
        directory: Path,
        adapter: str | AdapterClass,
        settings: Mapping[str, Any],
        *,
        timeout_seconds: float = 5.0,
        max_attempts: int = 3,
        backoff_base_seconds: float = 0.05,
    ) -> None:
        self.directory = directory
        self.adapter_class = load_adapter_class(adapter) if isinstance(adapter, str) else adapter
        self.settings: AdapterSettings = self.adapter_class.settings_model.model_validate(
            dict(settings)
        )
        self.destination = Destination(
            name=DESTINATION,
            adapter=adapter if isinstance(adapter, str) else adapter.__qualname__,
            adapter_class=self.adapter_class,
            settings=self.settings,
            max_attempts=max_attempts,
            backoff_base_seconds=backoff_base_seconds,
            backoff_max_seconds=max(backoff_base_seconds * 8, 1.0),
            timeout_seconds=timeout_seconds,
            source="contract-kit",
        )
        self.config = GatewayConfig({}, {}, {DESTINATION: self.destination}, {}, "contract")
        self._submissions: dict[str, str] = {}

    async def __aenter__(self) -> WorkerHarness:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.db = Database.open(f"sqlite:///{self.directory / 'gateway.db'}")
        await migrate(self.db)
        self.store = Store(self.db)
        self.broker = EmbeddedQueue(self.db, lease_seconds=60)
        await self.broker.start()
        self.blobs = BlobStore(self.directory / "blobs")
        self.worker = Worker(
            self.store, self.broker, self.blobs, lambda: self.config, poll_seconds=0.05
        )
        self._task = asyncio.create_task(self.worker.run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.worker.stop()
        await self._task
        await self.broker.close()
        await self.store.close()
        await self.db.close()

    async def submit(
        self, xml: bytes | None = None, attachments: Sequence[tuple[str, str, bytes]] = ()
    ) -> str:
        """Accept one submission for the destination, as the API would; its delivery id."""
        message_uuid = str(uuid.uuid4())
        body = xml if xml is not None else SAMPLE_XML.format(uuid=message_uuid).encode()
        records = []
        for name, content_type, content in attachments:
            writer = self.blobs.writer()
            writer.write(content)
            records.append(AttachmentRecord(name, content_type, writer.commit(), len(content)))
        delivery_id = str(uuid.uuid4())
        new = NewSubmission(
            id=str(uuid.uuid4()),
            message_uuid=message_uuid,
            sender="contract-kit",
            content_sha256=hashlib.sha256(body).hexdigest(),
            message_type="hundesteuer.anmeldung.0101",
            schema_set="contract-kit",
            municipality="08111000",
            recipient="ags:08111000",
            author=None,
            leika=None,
            config_version=self.config.version,
            xml=body,
            deliveries=[NewDelivery(delivery_id, DESTINATION, self.destination.adapter)],
            attachments=records,
        )
        self._submissions[delivery_id] = new.id
        await self.store.accept(new, self.broker.work_state)
        self.broker.notify()
        return delivery_id

    async def settled(self, delivery_id: str, within: float = 30.0) -> Outcome:
        """Wait until the delivery is delivered or dead (not while it is being retried) and
        its work item is settled too: the worker records the outcome first, then acks or
        dead-letters the item."""
        deadline = time.monotonic() + within
        submission_id = self._submissions[delivery_id]
        while True:
            view = await self.store.submission(submission_id)
            (d,) = [d for d in view.deliveries if d.id == delivery_id]
            settled = d.state != DeliveryState.PENDING and await self._item_settled(
                delivery_id, d.state
            )
            if settled or time.monotonic() > deadline:
                receipt = (
                    Receipt(reference=d.receipt_reference, message=d.receipt_message)
                    if d.state == DeliveryState.DELIVERED
                    else None
                )
                kinds = [e.kind for e in view.events if e.delivery_id in (None, delivery_id)]
                return Outcome(d.id, d.state, d.attempts, receipt, d.problem, kinds)
            await asyncio.sleep(0.05)

    async def _item_settled(self, delivery_id: str, state: DeliveryState) -> bool:
        if state != DeliveryState.DEAD:
            return True
        return any(d.item.delivery_id == delivery_id for d in await self.broker.dead_letters())


def forget_first_receipt(inner: AdapterClass) -> AdapterClass:
    """Wraps an adapter so that the worker never hears of its first success.

    That is what a crash between the Fachverfahren's answer and the recorded receipt looks
    like: the worker delivers the same delivery id again, and the target must not open a
    second case.
    """

    class ForgetFirstReceipt(Adapter[Any]):
        settings_model = inner.settings_model

        def __init__(self, settings: Any) -> None:
            super().__init__(settings)
            self.inner = inner(settings)

        async def deliver(self, delivery: Delivery) -> Receipt:
            receipt = await self.inner.deliver(delivery)
            if delivery.attempt == 1:
                raise TransientDeliveryError("contract kit: receipt lost, as in a crash")
            return receipt

        async def aclose(self) -> None:
            await self.inner.aclose()

    return ForgetFirstReceipt


class AdapterContract:
    """Subclass as ``Test...``, set :attr:`adapter` and provide a ``target`` fixture."""

    adapter: ClassVar[str | AdapterClass]
    """Entry-point name (as in a route's config), ``module:Class`` path, or the class."""
    timeout_seconds: ClassVar[float] = 2.0
    """The destination's timeout; the ``hang`` test waits this long once."""
    attachments: ClassVar[Sequence[tuple[str, str, bytes]]] = (
        ("Kaufvertrag.pdf", "application/pdf", b"%PDF-1.4 contract kit\n" + bytes(range(256))),
        # Senders repeat names and send paths: each must arrive as its own file
        # (``Attachment.file_name`` is unique and safe; ``name`` is the sender's).
        ("scans/Kaufvertrag.pdf", "application/pdf", b"%PDF-1.4 second"),
    )

    def check_receipt(self, receipt: Receipt) -> None:
        """Override to check the reference format (e.g. a case number pattern)."""
        assert receipt.reference, "the receipt carries no reference to the case"

    def harness(self, tmp_path: Path, target: ContractTarget) -> WorkerHarness:
        return WorkerHarness(
            tmp_path / "gateway",
            self.adapter,
            target.settings(),
            timeout_seconds=self.timeout_seconds,
        )

    @pytest.mark.asyncio
    async def test_delivers_with_receipt(self, tmp_path: Path, target: ContractTarget) -> None:
        async with self.harness(tmp_path, target) as h:
            first = await h.settled(await h.submit(attachments=self.attachments))
            second = await h.settled(await h.submit())
        for outcome in (first, second):
            assert outcome.state == DeliveryState.DELIVERED, outcome.problem
            assert outcome.attempts == 1
            assert outcome.receipt is not None
            self.check_receipt(outcome.receipt)
        assert await target.count_cases() == 2

    @pytest.mark.asyncio
    async def test_same_delivery_id_twice_is_one_case(
        self, tmp_path: Path, target: ContractTarget
    ) -> None:
        h = self.harness(tmp_path, target)
        h.destination = h.destination.model_copy(
            update={"adapter_class": forget_first_receipt(h.adapter_class)}
        )
        h.config = GatewayConfig({}, {}, {DESTINATION: h.destination}, {}, "contract")
        async with h:
            outcome = await h.settled(await h.submit(attachments=self.attachments))
        assert outcome.state == DeliveryState.DELIVERED, outcome.problem
        assert outcome.attempts == 2, "the delivery was not attempted again"
        assert await target.count_cases() == 1, "a redelivery opened a second case"

    async def _retried_then_delivered(
        self, tmp_path: Path, target: ContractTarget, mode: FaultMode
    ) -> None:
        await target.fail(mode, 1)
        async with self.harness(tmp_path, target) as h:
            outcome = await h.settled(await h.submit())
        assert outcome.state == DeliveryState.DELIVERED, outcome.problem
        assert outcome.attempts == 2
        assert "delivery.retry" in outcome.events
        # A hung call may still have reached the target: idempotency keeps it one case.
        assert await target.count_cases() == 1

    @pytest.mark.asyncio
    async def test_transient_failure_is_retried(
        self, tmp_path: Path, target: ContractTarget
    ) -> None:
        await self._retried_then_delivered(tmp_path, target, "transient")

    @pytest.mark.asyncio
    async def test_permanent_failure_is_dead_lettered(
        self, tmp_path: Path, target: ContractTarget
    ) -> None:
        await target.fail("permanent", 1)
        async with self.harness(tmp_path, target) as h:
            delivery_id = await h.submit()
            outcome = await h.settled(delivery_id)
            dead = await h.broker.dead_letters()
        assert outcome.state == DeliveryState.DEAD
        assert outcome.attempts == 1, "a permanent failure was retried"
        assert outcome.problem is not None and outcome.problem.startswith("permanent:")
        assert [d.item.delivery_id for d in dead] == [delivery_id]
        assert await target.count_cases() == 0

    @pytest.mark.asyncio
    async def test_hung_target_times_out_and_is_retried(
        self, tmp_path: Path, target: ContractTarget
    ) -> None:
        await self._retried_then_delivered(tmp_path, target, "hang")
