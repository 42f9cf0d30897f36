"""The public surface for adapter authors: everything an adapter package may import.

An adapter delivers one submission into one Fachverfahren. It is a subclass of
:class:`Adapter`, registered under the entry-point group ``xoev_gateway.adapters``::

    [project.entry-points."xoev_gateway.adapters"]
    my-fachverfahren = "my_package.adapter:MyAdapter"

Contract of :meth:`Adapter.deliver`:

- return a :class:`Receipt` only once the Fachverfahren has durably taken the submission;
- raise :class:`TransientDeliveryError` for anything worth retrying (the worker backs off);
  any other exception counts as transient too;
- raise :class:`PermanentDeliveryError` when retrying cannot help (dead-lettered);
- be idempotent by ``delivery.delivery_id``: the same delivery may arrive again after a
  crash, and must not create a second case (use it as idempotency key or file name).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

__all__ = [
    "Adapter",
    "AdapterSettings",
    "Attachment",
    "Delivery",
    "PermanentDeliveryError",
    "Receipt",
    "TransientDeliveryError",
]


class AdapterSettings(BaseModel):
    """Base for an adapter's settings; unknown keys are configuration errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Receipt(BaseModel):
    """What the Fachverfahren confirmed: e.g. its case number (Aktenzeichen)."""

    reference: str | None = None
    message: str | None = None


class TransientDeliveryError(Exception):
    """Delivery failed but may succeed later; ``retry_after`` (seconds) hints the delay."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(Exception):
    """Delivery cannot succeed by retrying; the delivery is dead-lettered with this reason."""


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    sha256: str
    size: int
    path: Path

    def open(self) -> Any:
        """A binary file object for streaming the content (read it in chunks)."""
        return self.path.open("rb")


@dataclass(frozen=True)
class Delivery:
    """One submission to deliver to one destination."""

    delivery_id: str
    submission_id: str
    message_uuid: str
    message_type: str
    municipality: str
    sender: str
    destination: str
    attempt: int
    xml: bytes
    payload: Mapping[str, Any] | None = None
    """The destination's effective mapping applied to ``xml``; None if it has no mapping."""
    attachments: Sequence[Attachment] = field(default_factory=tuple)
    payload_format: str | None = None
    """``json``, ``xml`` or ``keyvalue``: the format the mapping renders ``payload_body`` in."""
    payload_body: bytes | None = None
    """``payload`` rendered in ``payload_format``, ready to send (JSON text, XML, key=value)."""


S = TypeVar("S", bound=AdapterSettings)


class Adapter(ABC, Generic[S]):
    """Base class of all adapters; ``settings_model`` validates a destination's settings."""

    settings_model: ClassVar[type[AdapterSettings]] = AdapterSettings

    def __init__(self, settings: S) -> None:
        self.settings = settings

    @abstractmethod
    async def deliver(self, delivery: Delivery) -> Receipt:
        """Deliver durably and idempotently by ``delivery.delivery_id``; see module docs."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections; called when the worker stops or config is replaced."""
