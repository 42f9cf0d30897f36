"""The source contract: how an inbound transport hands a submission to the gateway.

A *source* (the gateway's own HTTP API, FIT-Connect, later XTA 2) takes what its transport
delivers, decodes and checks what the transport guarantees (decryption, hashes, signatures),
and hands the result as an ``IncomingSubmission`` to a ``SubmissionSink``: the accept use case
that every source calls (parse, validate, route, store durably).

The sink's answer decides what the source tells its transport:

- it returns an ``AcceptResult``: the submission is durably stored (or was already, then
  ``duplicate`` is true); the source now confirms to the transport (FIT-Connect:
  ``accept-submission``; XTA: close the message);
- it raises a *rejection* (``is_rejection``: the ``IntakeError`` family, ``Forbidden``); the
  source rejects definitely at the transport, with the RFC 9457 problem from ``problem_of``;
- it raises ``Unavailable`` (store or broker down), or anything else (a configuration error,
  a bug): our own trouble, never the sender's. The source neither confirms nor rejects;
  the submission stays with the transport and is fetched again later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from gateway.errors import (
    ErrorDetail,
    Forbidden,
    GatewayError,
    IntakeError,
    InvalidMessage,
    Unavailable,
)

__all__ = [
    "AcceptResult",
    "IncomingAttachment",
    "IncomingSubmission",
    "Problem",
    "Source",
    "SubmissionSink",
    "Unavailable",
    "is_rejection",
    "problem_of",
]


@dataclass(frozen=True)
class IncomingAttachment:
    """One attachment, in memory (``content``) or spooled to a file (``path``)."""

    name: str
    media_type: str
    sha256: str
    size: int
    content: bytes | None = None
    path: Path | None = None

    def __post_init__(self) -> None:
        if (self.content is None) == (self.path is None):
            raise ValueError("an attachment has either content or a path")

    def read(self) -> bytes:
        if self.content is not None:
            return self.content
        assert self.path is not None
        return self.path.read_bytes()


@dataclass(frozen=True)
class IncomingSubmission:
    """What a source hands to intake.

    ``source`` names the transport (``"api"``, ``"fit-connect"``, ``"xta"``);
    ``transport_refs`` are its references for the event log and support (FIT-Connect:
    ``submission_id``, ``case_id``, ``destination_id``); ``recipient`` is an AGS/ARS the
    transport vouches for, used when the XÖV message names none; ``sender`` is the
    authenticated identity as the access rules know it (e.g. ``fit-connect:<destinationId>``).
    """

    source: str
    xml: bytes
    sender: str
    attachments: tuple[IncomingAttachment, ...] = ()
    transport_refs: Mapping[str, str] = field(default_factory=dict)
    recipient: str | None = None


@dataclass(frozen=True)
class AcceptResult:
    submission_id: str
    duplicate: bool


@runtime_checkable
class SubmissionSink(Protocol):
    async def accept(self, incoming: IncomingSubmission) -> AcceptResult:
        """Store the submission durably, or raise (see the module docstring).

        On return the submission and its deliveries are committed; a repeated submission
        (same ``nachrichtenUUID``, same content) returns the first id with ``duplicate=True``.
        Raises a 4xx ``GatewayError`` for a definite rejection and ``Unavailable`` when
        durability cannot be guaranteed right now.
        """
        ...


class Source(Protocol):
    """A running inbound transport; ``run`` returns only when cancelled."""

    name: str

    async def run(self) -> None: ...


@dataclass(frozen=True)
class Problem:
    """An RFC 9457 problem, as a transport reports a rejection back to the sender."""

    type: str
    title: str
    detail: str
    status: int | None = None
    instance: str | None = None
    errors: tuple[ErrorDetail, ...] = ()


def is_rejection(error: BaseException) -> bool:
    """A definite rejection of the submission (``IntakeError``: invalid, unroutable, ...;
    ``Forbidden``: the sender may not send this service or region), as opposed to our own
    trouble: ``Unavailable``, a configuration error (``ConfigError``, an unknown sender
    identity ``AuthError``), a bug. Those leave the submission with the transport."""
    return isinstance(error, IntakeError | Forbidden)


def problem_of(error: GatewayError) -> Problem:
    errors = tuple(error.errors) if isinstance(error, InvalidMessage) else ()
    return Problem(error.type_uri, error.title, error.detail, error.status, errors=errors)
