"""Reading submissions off the wire with bounded memory.

``application/xml``: the body, at most ``max_xml_bytes``. ``multipart/form-data``: one XML
part named ``message`` and any number of attachment parts, parsed as they stream in
(python-multipart's push parser); each attachment goes straight into the
content-addressed blob store while its SHA-256 is computed, buffered at most
:data:`CHUNK` at a time.

Every attachment part must carry a file name (``filename``, or RFC 6266/5987
``filename*``, which wins when both are given); a part without one, or with a name or
content type the gateway would not deliver, is refused with
:class:`~gateway.errors.InvalidAttachment` before anything is accepted. The name is kept
as sent; the name adapters write it under is derived from it at the store
(``sdk.attachment_file_name``).
"""

from __future__ import annotations

import asyncio
import unicodedata
from email.message import Message

from fastapi import Request
from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

from gateway.api.problems import from_error
from gateway.api.zip_body import ZIP_TYPES, read_zip_submission
from gateway.errors import (
    InvalidAttachment,
    MalformedMultipart,
    MalformedXml,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from gateway.store.blobs import BlobStore, BlobWriter
from gateway.store.limits import ATTACHMENT_NAME, CONTENT_TYPE
from gateway.store.records import AttachmentRecord

XML_TYPES = ("application/xml", "text/xml")
CHUNK = 1024 * 1024
MAX_ATTACHMENTS = 1000
MAX_PART_HEADERS = 16 * 1024
"""Bytes of headers per part: a part's headers are held in memory until they end."""


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
    request: Request,
    blobs: BlobStore,
    xml_limit: int,
    written: list[AttachmentRecord] | None = None,
) -> tuple[bytes, list[AttachmentRecord]]:
    """``written`` collects each attachment once its blob is in the store, also when a
    later part fails: the caller removes them again if the submission is not accepted."""
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
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise MalformedMultipart("the multipart/form-data content type has no boundary")
    reader = _MultipartReader(blobs, xml_limit, written)
    parser = MultipartParser(boundary, reader.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            await reader.flush()
        parser.finalize()
        if not reader.ended:
            raise MalformedMultipart("the multipart body ends before its closing boundary")
        await reader.flush()
    except MultipartParseError as exc:
        reader.discard()
        raise MalformedMultipart(f"the multipart body cannot be parsed: {exc}") from None
    except BaseException:
        reader.discard()
        raise
    if reader.xml is None:
        raise MalformedXml("the multipart body has no part named 'message' with the XML")
    return bytes(reader.xml), reader.records


class _Attachment:
    """One attachment part while it streams in: data waits in ``pending`` (at most about
    one ``CHUNK``) until a thread writes it into the blob; fsync once it has ended."""

    def __init__(self, index: int, name: str, content_type: str) -> None:
        self.index = index
        self.name = name
        self.content_type = content_type
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.writer: BlobWriter | None = None
        self.ended = False
        self.sha256 = ""


class _MultipartReader:
    """python-multipart callbacks: parts → the XML and attachment blobs."""

    def __init__(
        self, blobs: BlobStore, xml_limit: int, written: list[AttachmentRecord] | None
    ) -> None:
        self.blobs = blobs
        self.xml_limit = xml_limit
        self.xml: bytearray | None = None
        self.records: list[AttachmentRecord] = []
        # also filled when a later part fails: the caller removes these blobs again
        self.written = written
        self.ended = False
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._field = bytearray()
        self._value = bytearray()
        self._in_message = False
        self._current: _Attachment | None = None
        self._open: list[_Attachment] = []
        self._count = 0

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._headers = []
        self._header_bytes = 0
        self._in_message = False
        self._current = None

    def _header_bytes_add(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_PART_HEADERS:
            raise MalformedMultipart(f"a part's headers exceed {MAX_PART_HEADERS} bytes")

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_bytes_add(end - start)
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_bytes_add(end - start)
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers.append((bytes(self._field).lower(), bytes(self._value)))
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        headers = dict(self._headers)
        disposition = Message()
        disposition["content-disposition"] = _text(headers.get(b"content-disposition", b""))
        params = dict(disposition.get_params([], header="content-disposition")[1:])
        name = params.get("name")
        if not isinstance(name, str):
            raise MalformedMultipart("a part's Content-Disposition has no name")
        if name == "message":
            if self.xml is not None:
                raise MalformedMultipart("the multipart body has more than one 'message' part")
            self.xml = bytearray()
            self._in_message = True
            return
        self._count += 1
        index = self._count
        if index > MAX_ATTACHMENTS:
            raise InvalidAttachment(
                f"more than {MAX_ATTACHMENTS} attachments", f"attachments[{index}]"
            )
        filename = _filename(disposition, index)
        content_type = _text(headers.get(b"content-type", b"")).strip()
        _check(content_type or "x", f"attachments[{index}].content_type", CONTENT_TYPE)
        self._current = _Attachment(index, filename, content_type or "application/octet-stream")
        self._open.append(self._current)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_message:
            assert self.xml is not None
            self.xml += data[start:end]
            if len(self.xml) > self.xml_limit:
                raise PayloadTooLarge(f"the XML part exceeds {self.xml_limit} bytes")
        elif self._current is not None:
            self._current.pending.append(data[start:end])
            self._current.pending_size += end - start

    def _part_end(self) -> None:
        if self._current is not None:
            self._current.ended = True
        self._current = None
        self._in_message = False

    def _end(self) -> None:
        self.ended = True

    async def flush(self) -> None:
        """Write what is pending into the blobs (in a thread: the writes and the fsync of
        an ended attachment must not stall the event loop); ended ones become records."""
        while self._open:
            attachment = self._open[0]
            if attachment.ended or attachment.pending_size >= CHUNK:
                await asyncio.to_thread(self._write, attachment)
            if not attachment.ended:
                return
            self._open.pop(0)
            assert attachment.writer is not None
            self.records.append(
                AttachmentRecord(
                    name=attachment.name,
                    content_type=attachment.content_type,
                    sha256=attachment.sha256,
                    size=attachment.writer.size,
                )
            )
            if self.written is not None:
                self.written.append(self.records[-1])

    def _write(self, attachment: _Attachment) -> None:
        if attachment.writer is None:
            attachment.writer = self.blobs.writer()
        for data in attachment.pending:
            attachment.writer.write(data)
        attachment.pending.clear()
        attachment.pending_size = 0
        if attachment.ended:
            attachment.sha256 = attachment.writer.commit()

    def discard(self) -> None:
        for attachment in self._open:
            if attachment.writer is not None:
                attachment.writer.discard()
        self._open.clear()


def _text(raw: bytes) -> str:
    # Browsers send names as raw UTF-8 (RFC 7578 4.2); anything else is read as Latin-1,
    # as Starlette's own form parser does.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _filename(disposition: Message, index: int) -> str:
    """The part's file name: ``filename*`` (RFC 5987, decoded by the e-mail package's RFC
    2231 support) over ``filename``; refused when missing or not deliverable."""
    field = f"attachments[{index}].filename"
    params = disposition.get_params([], header="content-disposition")
    plain: str | None = None
    extended: tuple[str | None, str | None, str] | None = None
    for key, value in params:
        if key != "filename":
            continue
        if isinstance(value, tuple):
            extended = extended or value
        else:
            plain = plain or value
    name = plain
    if extended is not None:
        # collapse_rfc2231_value would replace undecodable bytes; refuse them instead
        charset = extended[0] or "us-ascii"
        try:
            name = extended[2].encode("raw-unicode-escape").decode(charset)
        except (LookupError, UnicodeDecodeError):
            raise InvalidAttachment(
                f"attachment {index}: filename* is not valid {charset}", field
            ) from None
    if name is None or not name.strip():
        raise InvalidAttachment(
            f"attachment {index} has no file name: every part but 'message' is an attachment "
            "and needs filename= (or filename*=) in its Content-Disposition",
            field,
        )
    _check(name, field, ATTACHMENT_NAME)
    return name


def _check(value: str, field: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidAttachment(
            f"{field} has {len(value)} characters; at most {limit} are accepted", field
        )
    for position, char in enumerate(value):
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise InvalidAttachment(
                f"{field} contains the control character U+{ord(char):04X} at position {position}",
                field,
            )


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

        async def limited_receive() -> AsgiMessage:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise PayloadTooLarge(f"the request body exceeds {self.limit} bytes")
            return message

        await self.app(scope, limited_receive, send)
