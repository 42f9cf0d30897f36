"""Plain records that cross the store boundary."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import JsonValue

from gateway.store.states import DeliveryState, SubmissionStatus


@dataclass(frozen=True)
class AttachmentRecord:
    name: str
    """As the sender named it."""
    content_type: str
    sha256: str
    size: int
    file_name: str = ""
    """The name adapters write it under (``sdk.attachment_file_name``); set at intake."""


@dataclass(frozen=True)
class NewDelivery:
    id: str
    destination: str
    adapter: str


@dataclass(frozen=True)
class NewSubmission:
    id: str
    message_uuid: str
    sender: str
    content_sha256: str
    message_type: str
    schema_set: str
    municipality: str
    recipient: str
    author: str | None
    leika: str | None
    config_version: str
    xml: bytes
    deliveries: list[NewDelivery]
    attachments: list[AttachmentRecord] = field(default_factory=list)
    source: str = "api"
    """Which inbound transport delivered it; with ``references`` (the transport's own ids)
    recorded in the first event."""
    references: dict[str, str] = field(default_factory=dict)
    recipient_source: str = "message"
    """Who named the recipient (``RecipientSource``)."""
    header_detail: dict[str, str] = field(default_factory=dict)
    """Header values recorded in the first event (a composed identity, creation time)."""
    xml_sha256: str | None = None
    """SHA-256 of the XML alone (``content_sha256`` covers the attachments too)."""
    validation: dict[str, JsonValue] | None = None
    """The validation report (``ValidationReport.to_json``), recorded in the first event."""
    traceparent: str | None = None
    """The accept's trace context (W3C), when traces are on."""


@dataclass(frozen=True)
class DeliveryView:
    id: str
    destination: str
    adapter: str
    state: DeliveryState
    attempts: int
    receipt_reference: str | None
    receipt_message: str | None
    problem: str | None
    updated_at: float
    config_version: str | None = None


@dataclass(frozen=True)
class EventView:
    at: float
    kind: str
    delivery_id: str | None
    detail: str | None


@dataclass(frozen=True)
class SubmissionView:
    id: str
    message_uuid: str
    sender: str
    message_type: str
    municipality: str
    recipient: str
    received_at: float
    config_version: str
    deliveries: list[DeliveryView]
    events: list[EventView]
    attachments: list[AttachmentRecord]
    recipient_source: str = "message"
    payload_erased_at: float | None = None
    content_sha256: str | None = None
    xml_sha256: str | None = None

    @property
    def status(self) -> SubmissionStatus:
        states = {d.state for d in self.deliveries}
        if states == {DeliveryState.DELIVERED}:
            return SubmissionStatus.DELIVERED
        if DeliveryState.DEAD in states:
            if states == {DeliveryState.DEAD}:
                return SubmissionStatus.DEAD
            return SubmissionStatus.PARTIALLY_DEAD
        if DeliveryState.DELIVERED in states:
            return SubmissionStatus.PARTIALLY_DELIVERED
        return SubmissionStatus.ACCEPTED


@dataclass(frozen=True)
class DeliveryJob:
    """Everything the worker needs to deliver one delivery."""

    delivery_id: str
    submission_id: str
    destination: str
    state: DeliveryState
    message_uuid: str
    message_type: str
    municipality: str
    sender: str
    xml: bytes | None
    attachments: list[AttachmentRecord]
    traceparent: str | None = None
    """The accept's trace context: the delivery's spans continue its trace."""


@dataclass(frozen=True)
class RetentionCandidate:
    """A submission whose deliveries all reached a final state, with those deliveries'
    destinations, states and when they got there (retention decides from these)."""

    id: str
    message_type: str
    leika: str | None
    received_at: float
    deliveries: list[tuple[str, DeliveryState, float]]


@dataclass(frozen=True)
class ErasedPayload:
    submission_id: str
    erased_at: float
    attachment_sha256: list[str]
    """The blobs the submission referenced: removed unless something else still needs them."""
    already: bool = False
    """Erased before (an erasure repeated is no error)."""
