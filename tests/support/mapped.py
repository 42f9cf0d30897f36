"""Deliveries carrying the shipped example's mapped documents, one per mapping format, as
``mapping preview`` renders them (the same ``MappingTable.payload`` the worker calls)."""

from __future__ import annotations

import uuid
from functools import cache

from gateway.admin.preview import preview
from gateway.cli._common import load_all, settings_for
from gateway.mapping.apply import Payload
from gateway.sdk import Delivery
from tests.support.gateway_process import REPO

SAMPLES = REPO / "schemas" / "samples"
FORMATS = {
    "json": "hundesteuer/valid/anmeldung-stuttgart.xml",
    "keyvalue": "hundesteuer/valid/anmeldung-esslingen.xml",
    "xml": "bewohnerparken/valid/antrag-stuttgart.xml",
}


@cache
def previewed(fmt: str) -> tuple[bytes, Payload]:
    """The sample for ``fmt`` and what ``mapping preview`` shows for its one destination."""
    body = (SAMPLES / FORMATS[fmt]).read_bytes()
    config, registry, directory = load_all(settings_for(REPO / "deploy" / "config"))
    (shown,) = preview(body, registry, directory, config).deliveries
    assert shown.payload is not None and shown.payload.format == fmt
    return body, shown.payload


def mapped_delivery(fmt: str, destination: str = "test") -> Delivery:
    body, payload = previewed(fmt)
    return Delivery(
        delivery_id=str(uuid.uuid4()),
        submission_id=str(uuid.uuid4()),
        message_uuid=str(uuid.uuid4()),
        message_type="hundesteuer.anmeldung.0101",
        municipality="08111000",
        sender="test-sender",
        destination=destination,
        attempt=1,
        xml=body,
        payload=payload.data,
        payload_format=payload.format,
        payload_body=payload.body,
    )
