"""Why a subscriber rejects a FIT-Connect submission: the problems of ``reject-submission``.

FITKO's docs say ``type`` and ``instance`` must be copied exactly from their catalogue. Only
``authentication-tag-incorrect`` is confirmed in the collected files; the other type names
follow the same pattern from the docs' verification page and are **unconfirmed**: if the
catalogue differs, change them here, nowhere else. ``instance`` is ``metadata``, ``data``,
``attachment:<attachmentId>`` or ``submission``.

A rejection by the gateway's own intake (XSD or rule violation, no route, ...) is sent with the
gateway's problem type unless FIT-Connect has a matching one (schema/syntax violation of the
data), with our validation errors (XPath, line, message) in ``detail``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from gateway.errors import GatewayError, InvalidMessage, MalformedXml, UnsafeXml

PROBLEM_BASE = "https://schema.fitko.de/fit-connect/events/problems/"


class Kind(Enum):
    # value: (slug, title)
    ENCRYPTION = ("encryption-issue", "Entschlüsselungs-Fehler")
    SYNTAX = ("syntax-violation", "Syntax-Fehler")
    SCHEMA = ("schema-violation", "Schema-Fehler")
    UNSUPPORTED_SCHEMA = ("unsupported-schema", "Metadatenschema nicht unterstützt")
    HASH = ("hash-mismatch", "Prüfsumme stimmt nicht")
    TAG_MISSING = ("authentication-tag-missing", "Authentication-Tag fehlt")
    TAG_INCORRECT = ("authentication-tag-incorrect", "Authentication-Tag ungültig")
    ATTACHMENTS = ("attachments-mismatch", "Fehlerhafte Anlagen-Liste")
    EVENT_LOG = ("invalid-event-log", "Inkonsistentes Event-Log")
    MISSING_DATA = ("missing-data", "Fachdaten fehlen")
    DATA_FORMAT = ("unsupported-data-format", "Fachdatenformat nicht unterstützt")

    @property
    def type_uri(self) -> str:
        return PROBLEM_BASE + self.value[0]

    @property
    def title(self) -> str:
        return self.value[1]


@dataclass(frozen=True)
class RejectProblem:
    type: str
    title: str
    detail: str
    instance: str

    def as_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "title": self.title,
            "detail": self.detail,
            "instance": self.instance,
        }


class SubmissionRejected(Exception):
    """A check failed: the submission is rejected with ``problem`` (never retried)."""

    def __init__(self, kind: Kind, detail: str, instance: str) -> None:
        super().__init__(f"{kind.value[0]} ({instance}): {detail}")
        self.problem = RejectProblem(kind.type_uri, kind.title, detail, instance)


def from_intake(error: GatewayError) -> RejectProblem:
    """The problem for a rejection by the gateway's intake (the sink)."""
    detail = error.detail
    if isinstance(error, InvalidMessage) and error.errors:
        lines = [
            f"{e.path} (line {e.line}): {e.message}" if e.line else f"{e.path}: {e.message}"
            for e in error.errors[:50]
        ]
        detail = f"{error.detail}: " + "; ".join(lines)
    if isinstance(error, InvalidMessage):
        return RejectProblem(Kind.SCHEMA.type_uri, Kind.SCHEMA.title, detail, "data")
    if isinstance(error, MalformedXml | UnsafeXml):
        return RejectProblem(Kind.SYNTAX.type_uri, Kind.SYNTAX.title, detail, "data")
    return RejectProblem(error.type_uri, error.title, detail, "data")
