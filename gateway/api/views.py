"""What a submission's status shows: everything to administrators, no internals to senders.

Receipt messages, problems and event details come from adapters and Fachverfahren: server
paths (``written to /srv/…``), exception texts (``OSError … '/srv/…'``), a Fachverfahren's
error body. A sender sees states, counts, times and the receipt reference (its last path
segment only); an administrator sees it all (the same endpoint with an admin token, or
``GET /v1/admin/submissions/{id}``).
"""

from __future__ import annotations

import json
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
        return dict(delivery.__dict__)
    return {
        "id": delivery.id,
        "destination": delivery.destination,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "receipt_reference": _last_segment(delivery.receipt_reference),
        "problem": _sender_problem(delivery),
        "updated_at": delivery.updated_at,
    }


def _event(event: EventView, full: bool) -> dict[str, Any]:
    detail = json.loads(event.detail) if event.detail else None
    if not full and isinstance(detail, dict):
        shown = {k: v for k, v in detail.items() if k in SENDER_EVENT_KEYS}
        if isinstance(detail.get("reference"), str):
            shown["reference"] = _last_segment(detail["reference"])
        detail = shown
    return {"at": event.at, "kind": event.kind, "delivery_id": event.delivery_id, "detail": detail}


def submission_body(view: SubmissionView, *, full: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": view.id,
        "status": view.status,
        "message_uuid": view.message_uuid,
        "message_type": view.message_type,
        "recipient": {
            "kennung": view.recipient,
            "municipality": view.municipality,
            "source": view.recipient_source,
        },
        "received_at": view.received_at,
        "config_version": view.config_version,
        "content_sha256": view.content_sha256,
        "xml_sha256": view.xml_sha256,
        "payload": {
            "erased": view.payload_erased_at is not None,
            "erased_at": view.payload_erased_at,
        },
        "attachments": [a.__dict__ for a in view.attachments],
        "deliveries": [_delivery(d, full) for d in view.deliveries],
        "events": [_event(e, full) for e in view.events],
    }
    if full:
        body["sender"] = view.sender
    return body
