"""Reading submissions off the wire with bounded memory.

``application/xml``: the body, at most ``max_xml_bytes``. ``multipart/form-data``: one XML
part named ``message`` and any number of attachment parts; Starlette spools file parts to
disk above 1 MB, and each is streamed from there into the content-addressed blob store
while its SHA-256 is computed.
"""

from __future__ import annotations

import asyncio
from typing import IO

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.problems import from_error
from gateway.api.zip_body import ZIP_TYPES, read_zip_submission
from gateway.errors import MalformedXml, PayloadTooLarge, UnsupportedMediaType
from gateway.store.blobs import BlobStore, BlobWriter
from gateway.store.records import AttachmentRecord

XML_TYPES = ("application/xml", "text/xml")
CHUNK = 1024 * 1024


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_xml_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the XML body has {declared} bytes; at most {limit} are accepted")
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the XML body exceeds {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


async def read_submission(
    request: Request, blobs: BlobStore, xml_limit: int
) -> tuple[bytes, list[AttachmentRecord]]:
    kind = media_type(request)
    if kind in XML_TYPES or kind.endswith("+xml"):
        return await read_xml_body(request, xml_limit), []
    if kind in ZIP_TYPES:
        return await read_zip_submission(request, blobs, xml_limit)
    if kind != "multipart/form-data":
        raise UnsupportedMediaType(
            f"content type '{kind or 'none'}' is not accepted; send application/xml, "
            "multipart/form-data with a 'message' part, or application/zip"
        )
    async with request.form(max_files=1000, max_fields=10, max_part_size=xml_limit) as form:
        message = form.get("message")
        if message is None:
            raise MalformedXml("the multipart body has no part named 'message' with the XML")
        if isinstance(message, UploadFile):
            if message.size is not None and message.size > xml_limit:
                raise PayloadTooLarge(f"the XML part exceeds {xml_limit} bytes")
            xml = await message.read()
        else:
            xml = message.encode("utf-8")
        records: list[AttachmentRecord] = []
        for key, value in form.multi_items():
            if key == "message" or not isinstance(value, UploadFile):
                continue
            records.append(await _store_attachment(value, blobs))
    return xml, records


async def _store_attachment(upload: UploadFile, blobs: BlobStore) -> AttachmentRecord:
    # Copying, hashing and the fsync run in a thread: on the event loop they stalled every
    # other request for the length of a disk flush.
    writer: BlobWriter = await asyncio.to_thread(blobs.writer)
    try:
        await upload.seek(0)
        sha = await asyncio.to_thread(_copy_into, upload.file, writer)
    except BaseException:
        writer.discard()
        raise
    return AttachmentRecord(
        name=upload.filename or "attachment",
        content_type=upload.content_type or "application/octet-stream",
        sha256=sha,
        size=writer.size,
    )


def _copy_into(source: IO[bytes], writer: BlobWriter) -> str:
    while chunk := source.read(CHUNK):
        writer.write(chunk)
    return writer.commit()


class BodyLimit:
    """ASGI middleware: refuses any request body larger than ``limit`` bytes with 413."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            error = PayloadTooLarge(
                f"the request body has {int(declared)} bytes; at most {self.limit} are accepted"
            )
            await from_error(error)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise PayloadTooLarge(f"the request body exceeds {self.limit} bytes")
            return message

        await self.app(scope, limited_receive, send)
