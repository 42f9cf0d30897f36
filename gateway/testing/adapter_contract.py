"""Contract test kit for adapters: any adapter package runs it in its own pytest suite.

It runs the adapter under the real worker (:class:`gateway.worker.Worker`, the embedded
queue and a SQLite store in a temp directory) against a real target that the adapter author
provides, and checks what the worker relies on:

- a delivery ends ``delivered`` with the adapter's :class:`~gateway.sdk.Receipt`, and the
  attachments arrive with their content;
- with a mapping on the route, the target gets the mapped payload (not the raw XML);
- the same delivery id delivered twice creates one case at the target, and the repeated
  delivery's receipt names that case too;
- a transient failure is retried and then delivered; a permanent one is dead-lettered;
  a throttled one waits at least the target's retry hint (``Retry-After``);
- a hung target is cut off by the worker's timeout and retried; ``deliver`` cancelled from
  outside ends cancelled (not as an error, not with a receipt);
- no secret of the target (:meth:`ContractTarget.secrets`) shows in an error, a receipt,
  the event log or the log;
- the event loop is never blocked: each step of the adapter (the code between two
  awaits) is timed;
- connections are released: none is left open after the worker closed the adapter, and
  none is left to the garbage collector (``ResourceWarning``).

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
import gc
import hashlib
import json
import logging
import os
import sys
import time
import uuid
import warnings
from collections.abc import (
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal, Protocol, TypeVar, cast

import pytest

from gateway.adapter_registry import AdapterClass, load_adapter_class
from gateway.broker.embedded import EmbeddedQueue
from gateway.mapping.codelists import CodeLists
from gateway.mapping.model import MappingConfig
from gateway.mapping.table import MappingSource, MappingTable, build_table
from gateway.routing.config import Destination, GatewayConfig
from gateway.sdk import (
    Adapter,
    AdapterSettings,
    Delivery,
    Receipt,
    TransientDeliveryError,
    attachment_file_name,
)
from gateway.store.blobs import BlobStore
from gateway.store.database import Database
from gateway.store.migrate import migrate
from gateway.store.records import AttachmentRecord, NewDelivery, NewSubmission
from gateway.store.states import DeliveryState
from gateway.store.store import Store
from gateway.worker import Worker

T = TypeVar("T")

FaultMode = Literal["transient", "permanent", "hang", "throttle"]
"""What :meth:`ContractTarget.fail` makes the target do; see adapters/README.md."""

DESTINATION = "contract-target"

RETRY_AFTER_SECONDS = 2
"""The retry hint a ``throttle`` fault gives (e.g. ``429`` with ``Retry-After: 2``)."""

MAPPED_MARKER = "contract-kit-mapped-7f3a"
"""A constant of :data:`CONTRACT_MAPPING`: found at the target only if the mapped payload
(not the raw XML, which never contains it) was delivered."""

CONTRACT_MAPPING: Mapping[str, Any] = {
    "namespaces": {
        "hs": "https://xoev-gateway.de/schemata/hundesteuer/1_0",
        "xgb": "https://xoev-gateway.de/schemata/basis/1_0",
    },
    "format": "json",
    "fields": {
        "kontrollwert": {"const": MAPPED_MARKER},
        "halter": {
            "template": "{vorname} {familienname}",
            "args": {
                "vorname": "hs:halter/hs:person/xgb:vorname",
                "familienname": "hs:halter/hs:person/xgb:familienname",
            },
        },
        "hund": "hs:hund/hs:name",
    },
}
"""The mapping the kit puts on the route to check that mapped payloads are delivered: the
``namespaces`` and a mapping entry's ``format`` and ``fields`` (as in a config file)."""

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


@dataclass(frozen=True)
class TargetCase:
    """One case as the target holds it, for the kit to look into."""

    content: str
    """What the target received for the case, as text (e.g. the request body)."""
    attachments: Mapping[str, bytes] = field(default_factory=dict)
    """The case's attachments by file name, with their content as received (decoded)."""


class ContractTarget(Protocol):
    """The Fachverfahren (a real one in a test instance, or a faithful stand-in) under test.

    A method that does not apply to a Fachverfahren raises ``NotImplementedError``; the
    kit then skips the checks that need it, with the reason (see adapters/README.md).
    """

    def settings(self) -> Mapping[str, Any]:
        """The adapter settings (as in a route's config) that deliver to this target."""
        ...

    def secrets(self) -> Mapping[str, str]:
        """Environment variables (name → value) with the secrets the settings refer to
        (``*_env``). The kit sets them while it runs, and fails if a value shows up in an
        error, a receipt, the event log or the log."""
        ...

    async def count_cases(self) -> int:
        """How many distinct cases the target holds now."""
        ...

    async def cases(self) -> Sequence[TargetCase]:
        """The cases the target holds now, oldest first."""
        ...

    async def fail(self, mode: FaultMode, count: int) -> None:
        """Make the next ``count`` deliveries fail: ``transient`` (e.g. HTTP 503; no case),
        ``permanent`` (e.g. HTTP 422; no case), ``hang`` (accept, then answer only after
        the kit's ``timeout_seconds`` plus a second or more) or ``throttle`` (refuse for
        now with a retry hint of :data:`RETRY_AFTER_SECONDS`, e.g. HTTP 429 with
        ``Retry-After: 2``; no case)."""
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
    texts: list[str] = field(default_factory=list)
    """Every text the store recorded for the delivery (problem, receipt, event details)."""
    retry_delays: list[float] = field(default_factory=list)
    """The delay of each retry, in seconds, as the worker scheduled it."""


_SCHEDSTAT = Path("/proc/thread-self/schedstat")


def _runnable_waiting() -> float:
    """Seconds this thread has spent runnable but waiting for a CPU (Linux schedstat; 0
    elsewhere): time a loaded machine adds to a step, which is not the adapter's doing."""
    try:
        return int(_SCHEDSTAT.read_bytes().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def _clock() -> float:
    """Wall time minus waiting for a CPU: the time a step held the loop by computing or by
    blocking (``time.sleep``, a synchronous socket), not by being preempted."""
    return time.perf_counter() - _runnable_waiting()


class _TimedSteps:
    """Awaits ``coro`` and records how long each of its steps held the event loop.

    A step is the code between two suspensions; a blocking call (``time.sleep``, a
    synchronous HTTP call) makes one step as long as the call. Only the adapter's own steps
    are timed, so a loaded machine (another process running meanwhile) hardly shows.
    """

    def __init__(self, coro: Coroutine[Any, Any, T], record: Callable[[float], None]) -> None:
        self.coro = coro
        self.record = record

    def __await__(self) -> Generator[Any, Any, T]:
        coro, send, error = self.coro, None, None
        while True:
            started = _clock()
            try:
                yielded = coro.send(send) if error is None else coro.throw(error)
            except StopIteration as stop:
                self.record(_clock() - started)
                return cast(T, stop.value)
            except BaseException:
                self.record(_clock() - started)
                raise
            self.record(_clock() - started)
            try:
                send, error = (yield yielded), None
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # thrown in by the task (e.g. its cancellation)
                send, error = None, exc


class StepTimer:
    """The longest time an adapter held the event loop in one go (``longest``, seconds)."""

    def __init__(self) -> None:
        self.longest = 0.0

    def record(self, seconds: float) -> None:
        self.longest = max(self.longest, seconds)

    def timed(self, coro: Coroutine[Any, Any, T]) -> Awaitable[T]:
        return _TimedSteps(coro, self.record)

    def wrap(self, inner: AdapterClass) -> AdapterClass:
        """``inner`` with its construction, ``deliver`` and ``aclose`` timed."""
        timer = self

        class Timed(Adapter[Any]):
            settings_model = inner.settings_model

            def __init__(self, settings: Any) -> None:
                super().__init__(settings)
                started = _clock()
                self.inner = inner(settings)
                timer.record(_clock() - started)

            async def deliver(self, delivery: Delivery) -> Receipt:
                return await timer.timed(self.inner.deliver(delivery))

            async def aclose(self) -> None:
                await timer.timed(self.inner.aclose())

        return Timed


def mapping_table(mapping: Mapping[str, Any], directory: Path) -> MappingTable:
    """The mapping table of a route with ``mapping`` (``namespaces``, ``format``, ``fields``
    as in :data:`CONTRACT_MAPPING`) for every municipality and the kit's message type."""
    entry = MappingConfig.model_validate(
        {
            "service": "hundesteuer.anmeldung.0101",
            "municipality": "*",
            "destination": DESTINATION,
            **{k: v for k, v in mapping.items() if k != "namespaces"},
        }
    )
    path = directory / "contract-mapping.yaml"
    source = MappingSource(path, json.dumps(dict(mapping)), 0, entry)
    return build_table(
        [source], dict(mapping.get("namespaces", {})), CodeLists(()), {DESTINATION: None}
    )


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
        mapping: Mapping[str, Any] | None = None,
    ) -> None:
        """``mapping``: put this mapping on the route (see :func:`mapping_table`), so that
        deliveries carry a mapped ``payload``; without it they carry none."""
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
        self.mappings = mapping_table(mapping, directory) if mapping is not None else None
        self.config = GatewayConfig(
            {}, {}, {DESTINATION: self.destination}, {}, "contract", mappings=self.mappings
        )
        self._submissions: dict[str, str] = {}
        self.steps = StepTimer()
        """How long the adapter held the event loop at most (``steps.longest``, seconds)."""

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
        # The destination as it is now (a test may have swapped the adapter class), timed.
        timed = self.destination.model_copy(
            update={"adapter_class": self.steps.wrap(self.destination.adapter_class)}
        )
        self.config = GatewayConfig(
            {}, {}, {DESTINATION: timed}, {}, "contract", mappings=self.mappings
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
                events = [e for e in view.events if e.delivery_id in (None, delivery_id)]
                texts = [t for t in (d.problem, d.receipt_reference, d.receipt_message) if t]
                texts += [e.detail for e in events if e.detail]
                delays = [
                    float(json.loads(e.detail)["delay_seconds"])
                    for e in events
                    if e.kind == "delivery.retry" and e.detail
                ]
                kinds = [e.kind for e in events]
                return Outcome(
                    d.id, d.state, d.attempts, receipt, d.problem, kinds, texts, delays
                )
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
        forgotten: ClassVar[dict[str, Receipt]] = {}
        """The receipt of each first attempt that the worker never heard of."""

        def __init__(self, settings: Any) -> None:
            super().__init__(settings)
            self.inner = inner(settings)

        async def deliver(self, delivery: Delivery) -> Receipt:
            receipt = await self.inner.deliver(delivery)
            if delivery.attempt == 1:
                self.forgotten[delivery.delivery_id] = receipt
                raise TransientDeliveryError("contract kit: receipt lost, as in a crash")
            return receipt

        async def aclose(self) -> None:
            await self.inner.aclose()

    return ForgetFirstReceipt


def _socket_fds() -> set[int] | None:
    """This process's open socket descriptors (Linux); ``None`` where it cannot tell."""
    fd_dir = Path("/proc/self/fd")
    if not sys.platform.startswith("linux") or not fd_dir.is_dir():
        return None
    found = set()
    for entry in os.listdir(fd_dir):
        try:
            if os.readlink(fd_dir / entry).startswith("socket:"):
                found.add(int(entry))
        except OSError:  # closed meanwhile (e.g. the listing's own descriptor)
            continue
    return found


@dataclass
class _Watch:
    """What one kit test watches besides its outcomes: the harnesses (the steps of their
    adapters) and ``ResourceWarning`` (unclosed transports and sockets, also from garbage
    collection)."""

    harnesses: list[WorkerHarness] = field(default_factory=list)
    resource_warnings: list[str] = field(default_factory=list)


class AdapterContract:
    """Subclass as ``Test...``, set :attr:`adapter` and provide a ``target`` fixture."""

    adapter: ClassVar[str | AdapterClass]
    """Entry-point name (as in a route's config), ``module:Class`` path, or the class."""
    timeout_seconds: ClassVar[float] = 2.0
    """The destination's timeout; the ``hang`` tests wait this long once."""
    attachments: ClassVar[Sequence[tuple[str, str, bytes]]] = (
        ("Kaufvertrag.pdf", "application/pdf", b"%PDF-1.4 contract kit\n" + bytes(range(256))),
        # Senders repeat names and send paths: each must arrive as its own file
        # (``Attachment.file_name`` is unique and safe; ``name`` is the sender's).
        ("scans/Kaufvertrag.pdf", "application/pdf", b"%PDF-1.4 second"),
    )
    """Sent with the first delivery; ``()`` for an adapter that delivers no attachments
    (the attachment check is then skipped)."""
    mapping: ClassVar[Mapping[str, Any] | None] = CONTRACT_MAPPING
    """The mapping for the mapped-payload check (``None``: the adapter ignores mappings)."""
    max_step_seconds: ClassVar[float] = 0.5
    """How long the adapter may hold the event loop in one step (construction, or the code
    of ``deliver``/``aclose`` between two awaits): a blocking call shows as a long
    step; well above what a loaded machine adds to a step's milliseconds."""

    def check_receipt(self, receipt: Receipt) -> None:
        """Override to check the reference format (e.g. a case number pattern)."""
        assert receipt.reference, "the receipt carries no reference to the case"

    def harness(
        self, tmp_path: Path, target: ContractTarget, mapping: Mapping[str, Any] | None = None
    ) -> WorkerHarness:
        h = WorkerHarness(
            tmp_path / "gateway" / str(len(self._watch.harnesses)),
            self.adapter,
            target.settings(),
            timeout_seconds=self.timeout_seconds,
            mapping=mapping,
        )
        self._watch.harnesses.append(h)
        return h

    _watch: _Watch

    @pytest.fixture(autouse=True)
    def _contract_watch(
        self,
        target: ContractTarget,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> Iterator[None]:
        """Around every kit test: the target's secrets in the environment; afterwards no
        secret in the log, no blocked loop, no resource left to the garbage collector."""
        secrets = dict(target.secrets())
        for name, value in secrets.items():
            monkeypatch.setenv(name, value)
        caplog.set_level(logging.DEBUG)
        self._watch = watch = _Watch()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            yield
            # Clients dropped without closing: their transports warn when collected.
            gc.collect()
        for w in caught:
            if issubclass(w.category, ResourceWarning):
                watch.resource_warnings.append(str(w.message))
            else:  # not ours: pass it on to the suite's own filters
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        self._no_secrets(secrets, [r.getMessage() for r in caplog.records], "the log")
        for r in caplog.records:
            if r.exc_text:
                self._no_secrets(secrets, [r.exc_text], "a logged traceback")
        for h in watch.harnesses:
            assert h.steps.longest < self.max_step_seconds, (
                f"the adapter held the event loop for {h.steps.longest:.2f}s in one go: "
                "deliver() makes a blocking call (time.sleep, synchronous HTTP or file I/O); "
                "every other delivery of the worker waits meanwhile"
            )
        assert not watch.resource_warnings, (
            "a connection or file was left to the garbage collector (never closed): "
            f"{watch.resource_warnings[:3]}; close clients in aclose() or per call"
        )

    @staticmethod
    def _no_secrets(secrets: Mapping[str, str], texts: Sequence[str], where: str) -> None:
        for name, value in secrets.items():
            for text in texts:
                assert value not in text, (
                    f"the secret in ${name} appears in {where}: {text[:200]!r}"
                )

    def _check_outcome(self, target: ContractTarget, outcome: Outcome) -> None:
        texts = list(outcome.texts)
        if outcome.receipt is not None:
            texts += [t for t in (outcome.receipt.reference, outcome.receipt.message) if t]
        self._no_secrets(target.secrets(), texts, "what the gateway recorded")

    async def _cases(self, target: ContractTarget) -> Sequence[TargetCase]:
        try:
            return await target.cases()
        except NotImplementedError:
            pytest.skip("the target cannot show what it received (cases())")

    async def _fail(self, target: ContractTarget, mode: FaultMode, count: int) -> None:
        try:
            await target.fail(mode, count)
        except NotImplementedError:
            pytest.skip(f"the target has no '{mode}' fault")

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
            self._check_outcome(target, outcome)
        assert await target.count_cases() == 2

    @pytest.mark.asyncio
    async def test_attachments_arrive(self, tmp_path: Path, target: ContractTarget) -> None:
        if not self.attachments:
            pytest.skip("the adapter delivers no attachments (attachments = ())")
        async with self.harness(tmp_path, target) as h:
            outcome = await h.settled(await h.submit(attachments=self.attachments))
        assert outcome.state == DeliveryState.DELIVERED, outcome.problem
        self._check_outcome(target, outcome)
        cases = await self._cases(target)
        assert cases, "the target holds no case"
        received = cases[-1].attachments
        for index, (name, _, content) in enumerate(self.attachments, start=1):
            # under the sender's name, or the delivered file name the SDK derives from it
            delivered = name if name in received else attachment_file_name(index, name)
            assert delivered in received, (
                f"attachment {name} did not arrive (the case has {sorted(received)})"
            )
            assert received[delivered] == content, f"attachment {name} arrived altered"

    @pytest.mark.asyncio
    async def test_mapped_payload_is_delivered(
        self, tmp_path: Path, target: ContractTarget
    ) -> None:
        if self.mapping is None:
            pytest.skip("the adapter ignores mappings (mapping = None)")
        async with self.harness(tmp_path, target, mapping=self.mapping) as h:
            outcome = await h.settled(await h.submit())
        assert outcome.state == DeliveryState.DELIVERED, outcome.problem
        self._check_outcome(target, outcome)
        cases = await self._cases(target)
        assert cases, "the target holds no case"
        assert MAPPED_MARKER in cases[-1].content, (
            "the route's mapping was not delivered (delivery.payload / delivery.mapped): "
            f"the target received {cases[-1].content[:300]!r}"
        )

    @pytest.mark.asyncio
    async def test_same_delivery_id_twice_is_one_case(
        self, tmp_path: Path, target: ContractTarget
    ) -> None:
        h = self.harness(tmp_path, target)
        wrapped = forget_first_receipt(h.adapter_class)
        h.destination = h.destination.model_copy(update={"adapter_class": wrapped})
        async with h:
            delivery_id = await h.submit(attachments=self.attachments)
            outcome = await h.settled(delivery_id)
        assert outcome.state == DeliveryState.DELIVERED, outcome.problem
        assert outcome.attempts == 2, "the delivery was not attempted again"
        assert await target.count_cases() == 1, "a redelivery opened a second case"
        # The repeat must name the case the first attempt opened: it is the only receipt
        # the gateway will ever record for it.
        assert outcome.receipt is not None
        self.check_receipt(outcome.receipt)
        first = wrapped.forgotten.get(delivery_id)  # type: ignore[attr-defined]
        assert first is not None
        assert outcome.receipt.reference == first.reference, (
            f"the repeated delivery answered {outcome.receipt.reference!r}, the first "
            f"{first.reference!r}: the receipt of a repeat must name the same case"
        )
        self._check_outcome(target, outcome)

    async def _retried_then_delivered(
        self, tmp_path: Path, target: ContractTarget, mode: FaultMode
    ) -> Outcome:
        await self._fail(target, mode, 1)
        async with self.harness(tmp_path, target) as h:
            outcome = await h.settled(await h.submit())
        assert outcome.state == DeliveryState.DELIVERED, outcome.problem
        assert outcome.attempts == 2
        assert "delivery.retry" in outcome.events
        # A hung call may still have reached the target: idempotency keeps it one case.
        assert await target.count_cases() == 1
        self._check_outcome(target, outcome)
        return outcome

    @pytest.mark.asyncio
    async def test_transient_failure_is_retried(
        self, tmp_path: Path, target: ContractTarget
    ) -> None:
        await self._retried_then_delivered(tmp_path, target, "transient")

    @pytest.mark.asyncio
    async def test_retry_hint_is_honoured(self, tmp_path: Path, target: ContractTarget) -> None:
        outcome = await self._retried_then_delivered(tmp_path, target, "throttle")
        assert outcome.retry_delays and outcome.retry_delays[0] >= RETRY_AFTER_SECONDS, (
            f"the target asked to retry after {RETRY_AFTER_SECONDS}s, the worker retried "
            f"after {outcome.retry_delays}s: pass the hint on as "
            "TransientDeliveryError(retry_after=...)"
        )

    @pytest.mark.asyncio
    async def test_permanent_failure_is_dead_lettered(
        self, tmp_path: Path, target: ContractTarget
    ) -> None:
        await self._fail(target, "permanent", 1)
        async with self.harness(tmp_path, target) as h:
            delivery_id = await h.submit()
            outcome = await h.settled(delivery_id)
            dead = await h.broker.dead_letters()
        assert outcome.state == DeliveryState.DEAD
        assert outcome.attempts == 1, "a permanent failure was retried"
        assert outcome.problem is not None and outcome.problem.startswith("permanent:")
        assert [d.item.delivery_id for d in dead] == [delivery_id]
        assert await target.count_cases() == 0
        self._check_outcome(target, outcome)

    @pytest.mark.asyncio
    async def test_connections_are_released(self, tmp_path: Path, target: ContractTarget) -> None:
        before = _socket_fds()
        async with self.harness(tmp_path, target) as h:
            for _ in range(3):
                outcome = await h.settled(await h.submit())
                assert outcome.state == DeliveryState.DELIVERED, outcome.problem
        # The worker has awaited aclose(); a closed transport lets go of its socket on the
        # next loop iterations.
        left: set[int] = set()
        for _ in range(40):
            after = _socket_fds()
            if before is None or after is None:
                break
            left = after - before
            if not left:
                break
            await asyncio.sleep(0.025)
        assert not left, (
            f"{len(left)} connection(s) still open after the worker closed the adapter: "
            "close the adapter's clients in aclose(), and a client per call in that call"
        )

    @pytest.mark.asyncio
    async def test_cancelled_delivery_ends_cancelled(
        self, tmp_path: Path, target: ContractTarget
    ) -> None:
        """The worker cancels ``deliver`` at its timeout and when it stops: the
        cancellation must come out as such, not as an error or a receipt."""
        await self._fail(target, "hang", 1)
        h = self.harness(tmp_path, target)
        adapter = h.steps.wrap(h.adapter_class)(h.settings)
        delivery = Delivery(
            delivery_id=str(uuid.uuid4()),
            submission_id=str(uuid.uuid4()),
            message_uuid=(message_uuid := str(uuid.uuid4())),
            message_type="hundesteuer.anmeldung.0101",
            municipality="08111000",
            sender="contract-kit",
            destination=DESTINATION,
            attempt=1,
            xml=SAMPLE_XML.format(uuid=message_uuid).encode(),
        )
        try:
            task = asyncio.create_task(adapter.deliver(delivery))
            await asyncio.sleep(min(0.5, self.timeout_seconds / 2))
            assert not task.done(), "deliver() ended while the target hangs"
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=5)
            assert done, "deliver() ignored the cancellation for 5 s"
            if not task.cancelled():
                error = task.exception()
                result = None if error is not None else task.result()
                raise AssertionError(
                    "deliver() turned its cancellation into "
                    + (f"{type(error).__name__}: {error}" if error else f"a result: {result!r}")
                    + "; let asyncio.CancelledError propagate"
                )
        finally:
            await adapter.aclose()

    @pytest.mark.asyncio
    async def test_hung_target_times_out_and_is_retried(
        self, tmp_path: Path, target: ContractTarget
    ) -> None:
        await self._retried_then_delivered(tmp_path, target, "hang")
