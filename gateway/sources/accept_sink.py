"""The ``SubmissionSink`` every source uses in the running gateway: the accept use case.

Attachments go into the content-addressed blob store first (written, fsynced, moved into
place), then ``accept`` stores submission, deliveries and work items in one transaction. An
attachment already stored by an earlier attempt is simply found again (same content, same
path), so a retried submission costs no second copy. Wiring::

    sink = AcceptPathSink(runtime.accept, runtime.blobs)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from gateway.accept import Accepted, Incoming, Source
from gateway.errors import Unavailable
from gateway.sources.base import AcceptResult, IncomingAttachment, IncomingSubmission
from gateway.store.blobs import BlobStore
from gateway.store.records import AttachmentRecord

CHUNK = 1024 * 1024


class AttachmentCorrupted(Exception):
    """The bytes written differ from the hash the source computed (a bug or a bad disk)."""


class AcceptPathSink:
    def __init__(self, accept: Callable[[Incoming], Awaitable[Accepted]], blobs: BlobStore) -> None:
        self._accept = accept
        self._blobs = blobs

    async def accept(self, incoming: IncomingSubmission) -> AcceptResult:
        if not incoming.attachments:
            return await self._accept_with([], incoming)
        # Held from the first blob until the accept settled, so that a blob removal
        # elsewhere (a rejected upload, an erasure) never takes one this accept is about
        # to reference (gateway/store/blobs.py). Blobs of a rejected submission are left
        # to the retention sweep.
        async with self._blobs.uploading():
            records = [await asyncio.to_thread(self._store, a) for a in incoming.attachments]
            return await self._accept_with(records, incoming)

    async def _accept_with(
        self, records: list[AttachmentRecord], incoming: IncomingSubmission
    ) -> AcceptResult:
        accepted = await self._accept(
            Incoming(
                xml=incoming.xml,
                sender=incoming.sender,
                attachments=records,
                source=Source(incoming.source, dict(incoming.transport_refs)),
                recipient=incoming.recipient,
            )
        )
        return AcceptResult(accepted.id, accepted.duplicate)

    def _store(self, attachment: IncomingAttachment) -> AttachmentRecord:
        try:
            writer = self._blobs.writer()
        except OSError as exc:
            raise Unavailable(f"attachment store: {exc}") from exc
        try:
            if attachment.content is not None:
                writer.write(attachment.content)
            else:
                assert attachment.path is not None
                with attachment.path.open("rb") as source:
                    while chunk := source.read(CHUNK):
                        writer.write(chunk)
            sha256 = writer.commit()
        except OSError as exc:
            writer.discard()
            raise Unavailable(f"attachment store: {exc}") from exc
        except BaseException:
            writer.discard()
            raise
        if sha256 != attachment.sha256:
            raise AttachmentCorrupted(
                f"{attachment.name}: stored {sha256}, expected {attachment.sha256}"
            )
        return AttachmentRecord(attachment.name, attachment.media_type, sha256, writer.size)
