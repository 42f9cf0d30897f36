"""The mapped document as a file: its name from the destination's pattern, its bytes as
rendered by the route's mapping (``Delivery.payload_body``, exactly what ``mapping preview``
shows). Shared by ``filedrop`` and ``sftp``."""

from __future__ import annotations

import string
from typing import Annotated

from pydantic import AfterValidator

from gateway.sdk import Delivery, PermanentDeliveryError

EXTENSIONS = {"json": "json", "xml": "xml", "keyvalue": "txt"}
# As gateway.mapping.apply.MEDIA_TYPES (adapters see only gateway.sdk).
MEDIA_TYPES = {
    "json": "application/json",
    "xml": "application/xml",
    "keyvalue": "text/plain; charset=utf-8",
}
FIELDS = (
    "delivery_id",
    "submission_id",
    "message_uuid",
    "message_type",
    "municipality",
    "format",
    "ext",
)
# One of these in the name keeps a redelivery on the same file (no second case).
STABLE = ("delivery_id", "message_uuid", "submission_id")
DEFAULT_PATTERN = "{delivery_id}.mapped.{ext}"


def _check(pattern: str) -> str:
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}
    except ValueError as exc:
        raise ValueError(f"not a name pattern: {exc}") from None
    unknown = used - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown field {sorted(unknown)} (known: {', '.join(FIELDS)})")
    if not used & set(STABLE):
        raise ValueError(f"must contain one of {{{'}, {'.join(STABLE)}}} (stable across retries)")
    for fmt in EXTENSIONS:
        name = _render(pattern, _SAMPLE, fmt)
        if "/" in name or "\\" in name or name.startswith("."):
            raise ValueError("must be a plain file name (no '/', no leading '.')")
        if name in (f"{_SAMPLE.delivery_id}.json", f"{_SAMPLE.delivery_id}.xml"):
            raise ValueError(
                f"gives '<delivery_id>.{name.rpartition('.')[2]}' for format {fmt}, the name of "
                "the metadata or original XML file"
            )
    return pattern


NamePattern = Annotated[str, AfterValidator(_check)]
"""A file name with ``{field}`` placeholders (see ``FIELDS``), checked at config load."""


def mapped_file(delivery: Delivery, pattern: str) -> tuple[str, bytes] | None:
    """The mapped document's file name and bytes; None when the route maps nothing."""
    if delivery.payload_body is None or delivery.payload_format is None:
        return None
    name = _render(pattern, delivery, delivery.payload_format)
    if "/" in name or name.startswith(".") or name in _reserved(delivery):
        raise PermanentDeliveryError(f"mapped file name '{name}' is not a usable file name")
    return name, delivery.payload_body


def _reserved(delivery: Delivery) -> tuple[str, str]:
    return f"{delivery.delivery_id}.json", f"{delivery.delivery_id}.xml"


def _render(pattern: str, delivery: Delivery, fmt: str) -> str:
    values = {f: str(getattr(delivery, f)) for f in FIELDS[:5]}
    return pattern.format(**values, format=fmt, ext=EXTENSIONS.get(fmt, fmt))


_SAMPLE = Delivery(
    delivery_id="d",
    submission_id="s",
    message_uuid="u",
    message_type="t",
    municipality="m",
    sender="x",
    destination="y",
    attempt=1,
    xml=b"",
)
