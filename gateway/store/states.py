"""The states a delivery, a work item and a submission can be in: one definition each.

The values are the strings stored in the ``state`` columns (and shown on the API); a
``StrEnum`` member compares equal to its string, so rows read back compare as they are.
"""

from __future__ import annotations

from enum import StrEnum


class DeliveryState(StrEnum):
    """``deliveries.state``: where one delivery to one destination stands."""

    PENDING = "pending"
    """Not delivered yet (waiting, being tried, or replayed)."""
    DELIVERED = "delivered"
    """The Fachverfahren returned a receipt."""
    DEAD = "dead"
    """Given up (permanent error or attempts exhausted) until replayed."""


class WorkState(StrEnum):
    """``work_items.state``: the embedded queue's item states, and the outbox."""

    OUTBOX = "outbox"
    """Written by the accept for a relay to publish to an external broker."""
    READY = "ready"
    """Claimable from ``available_at`` on (embedded queue)."""
    LEASED = "leased"
    """Claimed by a consumer until ``lease_until``; claimable again after."""
    DEAD = "dead"
    """Dead-lettered (embedded queue) until replayed."""


class SubmissionStatus(StrEnum):
    """A submission's status, derived from its deliveries' states (API and CLI)."""

    ACCEPTED = "accepted"
    DELIVERED = "delivered"
    PARTIALLY_DELIVERED = "partially-delivered"
    DEAD = "dead"
    PARTIALLY_DEAD = "partially-dead"


class RecipientSource(StrEnum):
    """``submissions.recipient_source``: who named the recipient the submission went to."""

    MESSAGE = "message"
    """The message header (``leser``, ``Empfaenger``: the schema set's header spec)."""
    TRANSPORT = "transport"
    """The transport that delivered it (a FIT-Connect destination, an XTA mailbox)."""
    SENDER = "sender"
    """The sender's configured ``default_recipient``: the message names none."""
