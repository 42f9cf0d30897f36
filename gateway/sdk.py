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
  crash, and must not create a second case (use it as idempotency key or file name);
- never put a secret (password, token, API key) into an error message or a receipt: both
  are stored, shown by the API and the CLI, and logged.

Time, cancellation and resources:

- ``deliver`` runs on the worker's event loop together with every other delivery of the
  worker: never block it (no ``time.sleep``, no synchronous HTTP or file I/O of any size;
  use ``asyncio.sleep``, an async client, :meth:`Attachment.iter_bytes`, or
  ``asyncio.to_thread``). The contract kit measures the loop's lag while it delivers.
- The worker cancels ``deliver`` after the destination's ``timeout_seconds`` (and when it
  stops). Let :class:`asyncio.CancelledError` propagate: clean up in ``finally`` or
  ``async with``, never turn it into a receipt or an error. A timeout counts as transient;
  the adapter's own HTTP timeout should be shorter than the destination's, so that a slow
  answer ends as the adapter's own transient error with a clear message.
- Report a server's retry hint: ``TransientDeliveryError(..., retry_after=seconds)`` (e.g.
  from ``Retry-After``); the worker waits at least that long.
- One adapter instance serves every delivery of its destination, concurrently. Create
  long-lived clients (connection pools) once, in ``__init__`` or lazily, and close them in
  :meth:`Adapter.aclose`, which the worker awaits when it stops or the configuration is
  replaced; a client per call must be closed in the same call (``async with``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, BinaryIO, ClassVar, Generic, Literal, TypedDict, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Adapter",
    "AdapterSettings",
    "Attachment",
    "AttachmentJson",
    "Delivery",
    "MappedPayload",
    "PayloadFormat",
    "PermanentDeliveryError",
    "Receipt",
    "SecretEnv",
    "TransientDeliveryError",
    "attachment_file_name",
    "secret_from_env",
]

SecretEnv = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
"""The *name* of an environment variable that holds a secret (password, client secret,
token). Settings never hold secret values: name such fields ``*_env`` and read them with
:func:`secret_from_env` when delivering, so that config files and logs stay free of them."""


def secret_from_env(name: str) -> str:
    """The secret in environment variable ``name``.

    A missing variable is an operator error that retrying cannot fix, hence permanent: the
    delivery is dead-lettered naming the variable (never its value) and can be replayed once
    the variable is set.
    """
    value = os.environ.get(name)
    if not value:
        raise PermanentDeliveryError(f"secret environment variable {name} is not set")
    return value


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


FILE_NAME_BYTES = 200
"""Longest ``Attachment.file_name`` in UTF-8 bytes: file systems allow 255 per name, and
adapters write to a temp name (``.<name>.tmp``) before renaming into place."""

# Not portable in a file name: path separators, what Windows/SMB shares refuse, controls.
_CONTROLS = [*range(0x20), *range(0x7F, 0xA0)]
_UNSAFE = str.maketrans({c: "_" for c in '/\\:*?"<>|' + "".join(map(chr, _CONTROLS))})
_EXTENSION = 16


def attachment_file_name(index: int, name: str) -> str:
    """The name an attachment is delivered under: ``<index>-<name made safe>``.

    ``index`` is the attachment's 1-based position in the submission, which makes the
    name unique within it (two parts called ``scan.pdf``, or ``dir1/scan.pdf`` and
    ``dir2/scan.pdf``, become ``1-scan.pdf`` and ``2-dir2_scan.pdf`` …) and keeps it
    stable for every redelivery. Made safe: NFC, separators and characters Windows
    refuses replaced by ``_`` (``../../plan.pdf`` → ``plan.pdf``), no leading dots or
    underscores, no trailing dots or spaces, at most
    :data:`FILE_NAME_BYTES` bytes (the stem is shortened, a short extension kept). The
    original name stays in ``Attachment.name``.
    """
    cleaned = unicodedata.normalize("NFC", name).translate(_UNSAFE).strip("._ ").rstrip(". ")
    prefix = f"{index}-"
    budget = FILE_NAME_BYTES - len(prefix)
    if len(cleaned.encode()) > budget:
        stem, dot, ext = cleaned.rpartition(".")
        if not dot or not stem or len(ext.encode()) > _EXTENSION:
            stem, dot, ext = cleaned, "", ""
        room = budget - len(dot + ext)
        stem = stem.encode()[:room].decode(errors="ignore").rstrip(". ")
        cleaned = f"{stem}{dot}{ext}"
    return prefix + (cleaned or "attachment")


PayloadFormat = Literal["json", "xml", "keyvalue"]
"""The formats a mapping renders its payload in (``format`` of a mapping entry)."""

CHUNK_BYTES = 3 * 64 * 1024
"""Chunk size of :meth:`Attachment.iter_bytes` (a multiple of 3: base64 per chunk joins)."""


class AttachmentJson(TypedDict):
    """One attachment in the common "JSON with base64 content" body."""

    name: str
    content_type: str
    sha256: str
    size: int
    content_base64: str


@dataclass(frozen=True)
class Attachment:
    name: str
    """The name the sender gave (may contain ``/``, any Unicode): for metadata, not paths."""
    content_type: str
    sha256: str
    size: int
    path: Path
    file_name: str = ""
    """The name to write it under: unique within the delivery, stable, safe on every file
    system (see :func:`attachment_file_name`); derived from ``name`` when not given."""

    def __post_init__(self) -> None:
        if not self.file_name:
            object.__setattr__(self, "file_name", attachment_file_name(1, self.name))

    async def iter_bytes(self, chunk_size: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
        """The content in chunks, read off the event loop: ``async for chunk in
        attachment.iter_bytes(): ...`` (e.g. as an httpx request ``content``)."""
        with await asyncio.to_thread(self.path.open, "rb") as file:
            while chunk := await asyncio.to_thread(file.read, chunk_size):
                yield chunk

    async def read_bytes(self) -> bytes:
        """The whole content in memory (for small attachments and mail bodies)."""
        return b"".join([chunk async for chunk in self.iter_bytes()])

    async def base64(self) -> str:
        """The content base64-encoded (read in chunks of a multiple of 3 bytes)."""
        parts = [base64.b64encode(chunk) async for chunk in self.iter_bytes(CHUNK_BYTES)]
        return b"".join(parts).decode("ascii")

    async def to_json(self) -> AttachmentJson:
        """This attachment as an object of a "JSON with base64 content" body."""
        return AttachmentJson(
            name=self.name,
            content_type=self.content_type,
            sha256=self.sha256,
            size=self.size,
            content_base64=await self.base64(),
        )

    def open(self) -> BinaryIO:
        """A synchronous binary file: only for code that runs in a thread (blocking reads on
        the event loop stall every delivery of the worker); prefer :meth:`iter_bytes`."""
        return self.path.open("rb")


@dataclass(frozen=True)
class MappedPayload:
    """What the route's mapping made of the XML: ``data``, rendered in ``format`` as
    ``body`` (JSON text, XML, or key=value lines)."""

    data: Mapping[str, Any]
    format: PayloadFormat
    body: bytes

    @property
    def media_type(self) -> str:
        return _MEDIA_TYPES[self.format]


_MEDIA_TYPES: dict[PayloadFormat, str] = {
    "json": "application/json",
    "xml": "application/xml",
    "keyvalue": "text/plain; charset=utf-8",
}


@dataclass(frozen=True)
class Delivery:
    """One submission to deliver to one destination."""

    delivery_id: str
    submission_id: str
    message_uuid: str
    message_type: str
    municipality: str
    sender: str
    """The authenticated sender (its configured name) that submitted it: who really sent
    it, whatever the message's ``autor`` claims. Pass it on to the Fachverfahren."""
    destination: str
    attempt: int
    xml: bytes
    payload: Mapping[str, Any] | None = None
    """The destination's effective mapping applied to ``xml``; None if it has no mapping."""
    attachments: Sequence[Attachment] = field(default_factory=tuple)
    payload_format: PayloadFormat | None = None
    """``json``, ``xml`` or ``keyvalue``: the format the mapping renders ``payload_body`` in."""
    payload_body: bytes | None = None
    """``payload`` rendered in ``payload_format``, ready to send (JSON text, XML, key=value)."""

    @property
    def mapped(self) -> MappedPayload | None:
        """The route's mapping applied to ``xml``; ``None`` when the route has no mapping
        (then send the XML, or :meth:`envelope`). The two cases, explicitly::

            if (mapped := delivery.mapped) is not None:
                send(mapped.body, mapped.media_type)          # what the mapping says
            else:
                send_json(delivery.envelope())                # metadata + the raw XML
        """
        if self.payload is None:
            return None
        body = self.payload_body
        if body is None or self.payload_format is None:
            # Built by hand (tests): render as JSON, the mapping's default format.
            return MappedPayload(self.payload, "json", json.dumps(dict(self.payload)).encode())
        return MappedPayload(self.payload, self.payload_format, body)

    def document(self) -> dict[str, Any]:
        """What a JSON-speaking Fachverfahren gets: the mapped payload when the route maps
        fields (:attr:`mapped`), else :meth:`envelope` (the metadata with the raw XML)."""
        if self.payload is not None:
            return dict(self.payload)
        return self.envelope()

    def envelope(self) -> dict[str, Any]:
        """A generic JSON envelope: the metadata, the XML as received (text) and the
        attachments' metadata (not their content; see :meth:`Attachment.to_json`)."""
        return {
            "delivery_id": self.delivery_id,
            "submission_id": self.submission_id,
            "message_uuid": self.message_uuid,
            "message_type": self.message_type,
            "municipality": self.municipality,
            "sender": self.sender,
            "xml": self.xml.decode("utf-8", errors="replace"),
            "attachments": [
                {
                    "name": a.name,
                    "file_name": a.file_name,
                    "content_type": a.content_type,
                    "sha256": a.sha256,
                    "size": a.size,
                }
                for a in self.attachments
            ],
        }


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
