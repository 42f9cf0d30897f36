"""The sink over the accept use case: attachments land in the blob store before accept."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gateway.accept import Accepted, Incoming
from gateway.errors import NoRoute
from gateway.sources.accept_sink import AcceptPathSink
from gateway.sources.base import IncomingAttachment, IncomingSubmission
from gateway.store.blobs import BlobStore


def _attachment(data: bytes, path: Path | None = None) -> IncomingAttachment:
    sha = hashlib.sha256(data).hexdigest()
    content = None if path else data
    return IncomingAttachment("plan.pdf", "application/pdf", sha, len(data), content, path)


async def test_attachments_are_stored_then_accepted_with_source_and_recipient(
    tmp_path: Path,
) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    seen: list[Incoming] = []

    async def accept(incoming: Incoming) -> Accepted:
        for record in incoming.attachments:  # durable before the accept transaction
            assert blobs.path(record.sha256).read_bytes()
        seen.append(incoming)
        return Accepted("sub-1", duplicate=len(seen) > 1)

    spooled = tmp_path / "spooled.bin"
    spooled.write_bytes(b"from a file" * 1000)
    incoming = IncomingSubmission(
        source="fit-connect",
        xml=b"<x/>",
        sender="fit-connect:dest",
        attachments=(
            _attachment(b"%PDF in memory"),
            _attachment(spooled.read_bytes(), path=spooled),
        ),
        transport_refs={"submission_id": "s", "case_id": "c"},
        recipient="ags:09162000",
    )
    sink = AcceptPathSink(accept, blobs)

    first = await sink.accept(incoming)
    again = await sink.accept(incoming)

    assert (first.submission_id, first.duplicate, again.duplicate) == ("sub-1", False, True)
    [passed, _] = seen
    assert passed.source.name == "fit-connect"
    assert passed.source.references == {"submission_id": "s", "case_id": "c"}
    assert passed.recipient == "ags:09162000"
    assert [(a.name, a.content_type, a.size) for a in passed.attachments] == [
        ("plan.pdf", "application/pdf", 14),
        ("plan.pdf", "application/pdf", 11000),
    ]


async def test_rejections_pass_through(tmp_path: Path) -> None:
    async def accept(incoming: Incoming) -> Accepted:
        raise NoRoute("no route")

    sink = AcceptPathSink(accept, BlobStore(tmp_path))
    with pytest.raises(NoRoute):
        await sink.accept(IncomingSubmission("fit-connect", b"<x/>", "s"))
