"""Routing keys: the header's values with the recipient resolved to a municipality."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.intake.header import Header
from gateway.municipality import RecipientResolver


@dataclass(frozen=True)
class RoutingKeys:
    message_uuid: str
    message_type: str
    author: str | None
    recipient: str | None
    """None when the message names no recipient (the transport or the sender's default
    must give one); ``municipality`` is None then too."""
    municipality: str | None
    leika: str | None
    header: Header


def routing_keys(header: Header, resolver: RecipientResolver, leika: str | None) -> RoutingKeys:
    recipient = header.recipient
    return RoutingKeys(
        message_uuid=header.message_uuid,
        message_type=header.message_type,
        author=header.author,
        recipient=recipient,
        municipality=resolver.resolve(recipient) if recipient is not None else None,
        leika=leika,
        header=header,
    )
