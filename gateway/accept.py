"""The use case every source shares: accept a submission.

A source (the HTTP API, FIT-Connect, later XTA) authenticates the sender and turns what its
transport delivered into an :class:`Incoming`; :meth:`Acceptor.accept` then examines the
XML (intake: parse, identify, validate, read the header), resolves the recipient, routes
against the live config, and stores submission, deliveries and work items in one
transaction. When it returns, the submission is durable and the source may answer its
transport; every :class:`~gateway.errors.GatewayError` it raises is a definite rejection,
except :class:`~gateway.errors.Unavailable` (our outage: the transport should try again).
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from gateway.errors import MissingRoutingKey, NoRoute, UnknownSender, ZipContentMismatch
from gateway.intake.pipeline import Examined
from gateway.intake.processes import Examiner
from gateway.municipality import MunicipalityDirectory, RecipientResolver
from gateway.routing.config import GatewayConfig
from gateway.store.records import AttachmentRecord, NewDelivery, NewSubmission
from gateway.store.states import RecipientSource, WorkState
from gateway.store.store import Store
from gateway.telemetry import traces
from gateway.telemetry.logs import fields
from gateway.telemetry.metrics import INTAKE_SECONDS, SUBMISSIONS_ACCEPTED

log = logging.getLogger("xoev_gateway.accept")

# Delivery ids are derived, not random: the same submission and destination always give
# the same id, which adapters use as idempotency key / file name. A nachrichtenUUID is
# unique per sender, so the sender is part of the name: two senders' messages with one
# UUID get two ids. Ids are computed once, at accept, and stored: deliveries accepted
# before the sender was part of the name keep theirs (a resubmission finds the stored
# submission and its deliveries).
DELIVERY_NAMESPACE = uuid.UUID("6f1d2c3a-8e0b-4f5e-9a77-0c4c1e2b7d10")


def delivery_id(sender: str, message_uuid: str, destination: str) -> str:
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"{message_uuid}/{destination}/{sender}"))


@dataclass(frozen=True, slots=True)
class Source:
    """Where a submission came from: the source's name and its transport's own references
    (e.g. a FIT-Connect submission and case id), recorded in the first event."""

    name: str
    references: Mapping[str, str] = field(default_factory=dict)


API = Source("api")


@dataclass(frozen=True, slots=True)
class Incoming:
    """What a source hands to the accept path.

    ``sender`` is the already authenticated sender's name; ``Acceptor.accept`` checks
    its grants (services, regions, authors) before anything is stored. ``recipient`` is a
    kennung (``ags:…``, ``ars:…`` or a configured alias) when the transport itself addresses the
    submission (a FIT-Connect destination, an XTA mailbox); it is taken when the message
    header names no recipient, and failing both the sender's ``default_recipient``.
    ``container`` names the container the attachments came in (``zip``): they must then
    be exactly the files the message lists, where its schema set's header says so.
    """

    xml: bytes
    sender: str
    attachments: Sequence[AttachmentRecord] = ()
    source: Source = API
    recipient: str | None = None
    container: str | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    id: str
    duplicate: bool
    """The same message was accepted before; ``id`` is the first submission's."""


class Acceptor:
    """Examine, resolve, route, store: one instance per active configuration."""

    def __init__(
        self,
        examiner: Examiner,
        directory: MunicipalityDirectory,
        config: GatewayConfig,
        store: Store,
        work_state: WorkState,
        stored: Callable[[], None] = lambda: None,
    ) -> None:
        """``work_state``: the state new work items start in (the broker's); ``stored`` is
        called after a new submission committed (wakes the queue consumers or relay)."""
        self.examiner = examiner
        self.directory = directory
        self.config = config
        self.store = store
        self.work_state = work_state
        self.stored = stored
        self.resolver = RecipientResolver(directory, config.recipients)

    def with_config(
        self, config: GatewayConfig, directory: MunicipalityDirectory | None = None
    ) -> Acceptor:
        return Acceptor(
            self.examiner,
            directory or self.directory,
            config,
            self.store,
            self.work_state,
            self.stored,
        )

    async def accept(self, incoming: Incoming) -> Accepted:
        attributes = {"xoev.source": incoming.source.name, "xoev.sender": incoming.sender}
        with traces.span("submission.accept", attributes):
            return await self._accept(incoming)

    async def _accept(self, incoming: Incoming) -> Accepted:
        started = time.perf_counter()
        new = await self.prepare(incoming)
        # Ids, names of configured things and the municipality key only: no payload values.
        ids = {
            "message_uuid": new.message_uuid,
            "municipality": new.municipality,
            "service": new.message_type,
            "sender": new.sender,
            "source": new.source,
            "config_version": new.config_version,
        }
        routed = {
            "destinations": [d.destination for d in new.deliveries],
            "delivery_ids": [d.id for d in new.deliveries],
        }
        # Routing is a step of its own at DEBUG; at INFO the accepted line carries it: a JSON
        # line costs the API process ~40 us (measured), so the hot path writes one, not two.
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "routed to %s",
                ", ".join(routed["destinations"]),
                extra=fields(event="submission.routed", **routed, **ids),
            )
        submission_id, created = await self.store.accept(new, self.work_state)
        if created:
            self.stored()
        INTAKE_SECONDS.labels(new.source).observe(time.perf_counter() - started)
        SUBMISSIONS_ACCEPTED.labels(new.source, new.message_type).inc()
        log.info(
            "accepted" if created else "accepted before (duplicate)",
            extra=fields(
                event="submission.accepted",
                submission_id=submission_id,
                duplicate=not created,
                **routed,
                **ids,
            ),
        )
        return Accepted(submission_id, duplicate=not created)

    async def prepare(self, incoming: Incoming) -> NewSubmission:
        """Everything before the store: the records ``accept`` would write."""
        body = incoming.xml
        examined = await self.examiner.examine(body)
        header = examined.header
        recipient, recipient_source = self._recipient(incoming, examined)
        municipality = self.resolver.resolve(recipient)
        if incoming.container is not None and header.files is not None:
            _check_listed(incoming, header.files)
        message_uuid = header.key(incoming.sender)
        leika = examined.leika
        services = (header.message_type,) + ((leika,) if leika else ())
        sender = self.config.senders.get(incoming.sender)
        if sender is None:
            raise UnknownSender(f"sender '{incoming.sender}' is not configured")
        sender.authorize(municipality, services, header.author)
        destinations = self.config.resolve(municipality, services)
        if not destinations:
            name = self.directory.names.get(municipality, "")
            raise NoRoute(
                f"no route for municipality {municipality} ({name}) and service "
                f"{header.message_type}"
            )
        content = hashlib.sha256(body)
        xml_sha256 = content.hexdigest()  # evidence that outlives the erased payload
        # The document's own hash for the validation report too (intake leaves it to us).
        validation = {**examined.report.to_json(), "sha256": xml_sha256}
        for att in incoming.attachments:
            content.update(f"\0{att.name}\0{att.sha256}".encode())
        source = incoming.source
        return NewSubmission(
            id=str(uuid.uuid4()),
            message_uuid=message_uuid,
            sender=incoming.sender,
            content_sha256=content.hexdigest(),
            xml_sha256=xml_sha256,
            message_type=header.message_type,
            schema_set=examined.schema_set,
            municipality=municipality,
            recipient=recipient,
            recipient_source=recipient_source,
            author=header.author,
            leika=leika,
            config_version=self.config.version,
            xml=body,
            deliveries=[
                NewDelivery(
                    id=delivery_id(incoming.sender, message_uuid, name),
                    destination=name,
                    adapter=self.config.destinations[name].adapter,
                )
                for name in destinations
            ],
            attachments=list(incoming.attachments),
            source=source.name,
            references=dict(source.references),
            header_detail={
                key: value
                for key, value in (
                    ("identity", " + ".join(header.identity)),
                    ("created", header.created or ""),
                )
                if value
            },
            validation=validation,
            traceparent=traces.traceparent(),
        )

    def _recipient(self, incoming: Incoming, examined: Examined) -> tuple[str, str]:
        """The recipient kennung and where it came from: the message header, else the
        transport's addressing, else the sender's configured default."""
        header = examined.header
        if header.recipient:
            return header.recipient, RecipientSource.MESSAGE
        if incoming.recipient:
            return incoming.recipient, RecipientSource.TRANSPORT
        default = self.config.default_recipients.get(incoming.sender)
        if default:
            return default, RecipientSource.SENDER
        raise MissingRoutingKey(
            f"{header.recipient_missing} (schema set {examined.schema_set}); neither the "
            f"transport nor sender '{incoming.sender}' (default_recipient) gives one"
        )


def _check_listed(incoming: Incoming, listed: tuple[str, ...]) -> None:
    names = [a.name for a in incoming.attachments]
    missing = sorted(set(listed) - set(names))
    extra = sorted(set(names) - set(listed))
    container = incoming.container
    parts = []
    if missing:
        parts.append(f"the message lists {', '.join(missing)}, which the {container} lacks")
    if extra:
        parts.append(f"the {container} holds {', '.join(extra)}, not listed by the message")
    if parts:
        raise ZipContentMismatch("; ".join(parts))
