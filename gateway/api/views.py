"""What a submission's status shows: everything to administrators, no internals to senders.

Receipt messages, problems and event details come from adapters and Fachverfahren: server
paths (``written to /srv/…``), exception texts (``OSError … '/srv/…'``), a Fachverfahren's
error body. A sender sees states, counts, times and the receipt reference (its last path
segment only); an administrator sees it all (the same endpoint with an admin token, or
``GET /v1/admin/submissions/{id}``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from gateway.store.records import DeliveryView, EventView, SubmissionView
from gateway.store.states import DeliveryState

SENDER_EVENT_KEYS = frozenset(
    {
        "municipality",
        "message_type",
        "destinations",
        "config_version",
        "attachments",
        "source",
        "references",
        "recipient_source",
        "identity",
        "created",
        "attempt",
        "delay_seconds",
        "destination",
        "reason",
    }
)
"""Event detail keys a sender may see; anything else (problems, receipt messages, who
erased) is for administrators. New keys are hidden until listed here."""


def _last_segment(reference: str | None) -> str | None:
    if reference is None:
        return None
    return reference.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or None


def _sender_problem(delivery: DeliveryView) -> str | None:
    if delivery.problem is None:
        return None
    if delivery.state == DeliveryState.DEAD:
        return "delivery failed; the operator has the details"
    if delivery.state == DeliveryState.PENDING:
        return "delivery is being retried"
    return None


def _delivery(delivery: DeliveryView, full: bool) -> dict[str, Any]:
    if full:
        return {**delivery.__dict__, "updated_at": rfc3339(delivery.updated_at)}
    return {
        "id": delivery.id,
        "destination": delivery.destination,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "receipt_reference": _last_segment(delivery.receipt_reference),
        "problem": _sender_problem(delivery),
        "updated_at": rfc3339(delivery.updated_at),
    }


def _event(event: EventView, full: bool) -> dict[str, Any]:
    detail = json.loads(event.detail) if event.detail else None
    if not full and isinstance(detail, dict):
        shown = {k: v for k, v in detail.items() if k in SENDER_EVENT_KEYS}
        if isinstance(detail.get("reference"), str):
            shown["reference"] = _last_segment(detail["reference"])
        detail = shown
    if isinstance(detail, dict):
        detail.pop("validation", None)  # shown once, as the status' ``validation``
    return {
        "at": rfc3339(event.at),
        "kind": event.kind,
        "delivery_id": event.delivery_id,
        "detail": detail,
    }


def submission_body(view: SubmissionView, *, full: bool) -> dict[str, Any]:
    # The first event names the source and its transport's references (FIT-Connect:
    # submission, case and destination id); later source events follow in the log.
    first = json.loads(view.events[0].detail or "{}") if view.events else {}
    body: dict[str, Any] = {
        "id": view.id,
        "status": view.status,
        "source": first.get("source", "api"),
        "references": first.get("references", {}),
        "message_uuid": view.message_uuid,
        "message_type": view.message_type,
        "recipient": {
            "kennung": view.recipient,
            "municipality": view.municipality,
            "source": view.recipient_source,
        },
        "received_at": rfc3339(view.received_at),
        "config_version": view.config_version,
        "content_sha256": view.content_sha256,
        "xml_sha256": view.xml_sha256,
        "payload": {
            "erased": view.payload_erased_at is not None,
            "erased_at": (
                rfc3339(view.payload_erased_at) if view.payload_erased_at is not None else None
            ),
        },
        "attachments": [a.__dict__ for a in view.attachments],
        "deliveries": [_delivery(d, full) for d in view.deliveries],
        # The validation report of the accepted message (warnings, SHA-256), recorded with
        # the acceptance; submissions from before reports have none (docs/validation.md).
        "validation": first.get("validation"),
        "events": [_event(e, full) for e in view.events],
    }
    if full:
        body["sender"] = view.sender
    return body


def rfc3339(timestamp: float) -> str:
    """A store timestamp (Unix seconds) as RFC 3339 in UTC, to the millisecond."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")
