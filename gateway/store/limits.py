"""What the store can hold, checked before a submission joins a group-commit batch.

PostgreSQL refuses a string longer than its ``VARCHAR(n)`` and any NUL character (SQLite
takes both): checked here, such a value is the sender's problem, answered with
:class:`~gateway.errors.UnacceptableField` naming the field, and never a failure of the
batch that would have carried it. ``TEXT`` columns are unbounded in the database; their
limits below are the gateway's own, generous beyond what the schemas allow.
"""

from __future__ import annotations

from sqlalchemy import Column, String

from gateway.errors import UnacceptableField
from gateway.store.records import NewSubmission
from gateway.store.tables import attachments, deliveries, submissions

HEADER_TEXT = 4000
"""``author`` and ``recipient`` (Behörden-kennungen): ``xgb:Text`` allows 255 characters,
XBau's DIN 91379 ``datatypeC`` sets no maximum."""
ATTACHMENT_NAME = 1000
"""An attachment's original name (multipart sets no maximum; the delivered name is
shortened to ``sdk.FILE_NAME_BYTES``)."""
CONTENT_TYPE = 1000
"""An attachment's ``Content-Type`` with its parameters (RFC 2045 sets no maximum)."""

_TEXT_LIMITS = {
    "recipient": HEADER_TEXT,
    "author": HEADER_TEXT,
    "name": ATTACHMENT_NAME,
    "content_type": CONTENT_TYPE,
}


def _limit(column: Column[object]) -> int:
    if isinstance(column.type, String) and column.type.length is not None:
        return column.type.length
    return _TEXT_LIMITS[column.name]


def check_value(field: str, value: str, limit: int) -> None:
    """Raise ``UnacceptableField`` if ``value`` is longer than ``limit`` characters, has a
    NUL, or is no valid Unicode text (a lone surrogate cannot be encoded as UTF-8)."""
    if len(value) > limit:
        raise UnacceptableField(
            f"{field} has {len(value)} characters; at most {limit} are accepted", field
        )
    if "\0" in value:
        raise UnacceptableField(f"{field} contains a NUL character", field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UnacceptableField(f"{field} is not valid Unicode text", field) from None


_SUBMISSION = [
    (name, _limit(submissions.c[name]))
    for name in (
        "message_uuid",
        "sender",
        "content_sha256",
        "message_type",
        "schema_set",
        "municipality",
        "recipient",
        "author",
        "leika",
        "config_version",
    )
]
_ATTACHMENT = [
    (name, _limit(attachments.c[name])) for name in ("name", "file_name", "content_type", "sha256")
]
_DELIVERY = [(name, _limit(deliveries.c[name])) for name in ("id", "destination", "adapter")]


def check_storable(new: NewSubmission) -> None:
    """Every string ``new`` would store fits its column; else ``UnacceptableField``."""
    for name, limit in _SUBMISSION:
        value = getattr(new, name)
        if value is not None:
            check_value(name, value, limit)
    for index, attachment in enumerate(new.attachments, 1):
        for name, limit in _ATTACHMENT:
            check_value(f"attachments[{index}].{name}", getattr(attachment, name), limit)
    for delivery in new.deliveries:
        for name, limit in _DELIVERY:
            check_value(f"deliveries.{name}", getattr(delivery, name), limit)
