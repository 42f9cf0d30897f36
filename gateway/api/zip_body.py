"""ZIP submissions (``application/zip``): the XML is the message, the other files its
attachments, as xdomea ships ``<ProzessID>_<message type>.zip``.

The body is spooled (to disk above 8 MiB, the request size itself is capped by
``BodyLimit``) and unpacked in a thread with the stdlib ``zipfile``. Nothing in the
archive is trusted: the central directory is checked first (entry count, names, declared
sizes and ratios) and then every entry is counted again while it streams into the blob
store, since the declared sizes can lie. Refusals, each its own problem type:

- ``zip-bomb`` (413): more than ``zip_max_entries`` entries, more than ``zip_max_bytes``
  uncompressed in total, or an entry above 1 MiB expanding more than ``zip_max_ratio``
  times its compressed size;
- ``unsafe-zip-path`` (400): an entry name with ``..``, an absolute path, a drive letter
  or a backslash (names are used as attachment file names by the file drops);
- ``duplicate-zip-entry`` (400): two entries whose names differ at most in case;
- ``nested-zip`` (400): an entry that is itself a ZIP (by name or by its first bytes);
- ``malformed-zip`` (400): not a ZIP, an encrypted entry, or not exactly one top-level
  ``.xml`` entry.

Whether the files are the ones the message lists is checked after intake read the
header (``gateway.accept``, ``zip-content-mismatch``).
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
import tempfile
import zipfile
from dataclasses import dataclass
from typing import IO

from fastapi import Request

from gateway.api.auth import runtime_of
from gateway.errors import (
    DuplicateZipEntry,
    MalformedZip,
    NestedZip,
    PayloadTooLarge,
    UnsafeZipPath,
    ZipBomb,
)
from gateway.store.blobs import BlobStore
from gateway.store.records import AttachmentRecord

ZIP_TYPES = ("application/zip", "application/x-zip-compressed")
CHUNK = 1024 * 1024
SPOOL = 8 * 1024 * 1024
RATIO_FLOOR = 1024 * 1024
"""Entries up to this size may compress as well as they like (a page of zeros does)."""
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
NESTED_SUFFIXES = (".zip", ".jar", ".7z", ".rar", ".gz", ".tgz", ".bz2", ".xz")
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ZipLimits:
    max_entries: int
    max_bytes: int
    max_ratio: float


async def read_zip_submission(
    request: Request, blobs: BlobStore, xml_limit: int
) -> tuple[bytes, list[AttachmentRecord]]:
    settings = runtime_of(request).settings
    limits = ZipLimits(settings.zip_max_entries, settings.zip_max_bytes, settings.zip_max_ratio)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL) as spool:
        async for chunk in request.stream():
            spool.write(chunk)
        return await asyncio.to_thread(unpack, spool, blobs, xml_limit, limits)


def unpack(
    source: IO[bytes], blobs: BlobStore, xml_limit: int, limits: ZipLimits
) -> tuple[bytes, list[AttachmentRecord]]:
    """The message XML and the attachments stored in ``blobs``; raises a refusal."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise MalformedZip(f"the body is not a readable ZIP archive: {exc}") from None
    with archive:
        entries = _checked_entries(archive, limits)
        messages = [
            e for e in entries if e.filename.lower().endswith(".xml") and "/" not in e.filename
        ]
        if len(messages) != 1:
            found = ", ".join(e.filename for e in messages) or "none"
            raise MalformedZip(
                f"a ZIP submission holds exactly one top-level .xml entry, the message; "
                f"found: {found}"
            )
        (message,) = messages
        budget = _Budget(limits.max_bytes)
        xml = _read_message(archive, message, xml_limit, budget, limits)
        records: list[AttachmentRecord] = []
        for entry in entries:
            if entry is not message:
                records.append(_store_entry(archive, entry, blobs, budget, limits))
    return xml, records


def _checked_entries(archive: zipfile.ZipFile, limits: ZipLimits) -> list[zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise ZipBomb(
            f"the ZIP has {len(infos)} entries; at most {limits.max_entries} are accepted"
        )
    seen: dict[str, str] = {}
    declared = 0
    entries: list[zipfile.ZipInfo] = []
    for info in infos:
        name = info.filename
        _check_name(name)
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            raise MalformedZip(f"ZIP entry '{name}' is encrypted")
        folded = name.casefold()
        if folded in seen:
            raise DuplicateZipEntry(f"the ZIP holds '{seen[folded]}' and '{name}'")
        seen[folded] = name
        if name.lower().endswith(NESTED_SUFFIXES):
            raise NestedZip(f"ZIP entry '{name}' is an archive; nested archives are refused")
        declared += info.file_size
        if declared > limits.max_bytes:
            raise ZipBomb(f"the ZIP expands to more than {limits.max_bytes} bytes (declared sizes)")
        _check_ratio(name, info.file_size, info.compress_size, limits)
        entries.append(info)
    return entries


def _check_name(name: str) -> None:
    parts = name.split("/")
    if (
        name.startswith("/")
        or "\\" in name
        or _DRIVE.match(name)
        or any(part == ".." for part in parts)
        or "\0" in name
    ):
        raise UnsafeZipPath(f"ZIP entry name '{name}' is absolute or leaves the container")


def _check_ratio(name: str, size: int, compressed: int, limits: ZipLimits) -> None:
    if size > RATIO_FLOOR and size > limits.max_ratio * max(compressed, 1):
        raise ZipBomb(
            f"ZIP entry '{name}' expands {size / max(compressed, 1):.0f} times; at most "
            f"{limits.max_ratio:g} are accepted"
        )


class _Budget:
    """Uncompressed bytes left for the whole archive, counted as they stream."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.left = total

    def spend(self, count: int) -> None:
        self.left -= count
        if self.left < 0:
            raise ZipBomb(f"the ZIP expands to more than {self.total} bytes")


def _open(archive: zipfile.ZipFile, entry: zipfile.ZipInfo) -> IO[bytes]:
    try:
        return archive.open(entry)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
        raise MalformedZip(f"ZIP entry '{entry.filename}' cannot be read: {exc}") from None


def _read_counted(
    stream: IO[bytes], entry: zipfile.ZipInfo, budget: _Budget, limits: ZipLimits, done: int
) -> bytes:
    try:
        chunk = stream.read(CHUNK)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise MalformedZip(f"ZIP entry '{entry.filename}' is corrupt: {exc}") from None
    budget.spend(len(chunk))
    _check_ratio(entry.filename, done + len(chunk), entry.compress_size, limits)
    return chunk


def _read_message(
    archive: zipfile.ZipFile,
    entry: zipfile.ZipInfo,
    xml_limit: int,
    budget: _Budget,
    limits: ZipLimits,
) -> bytes:
    parts: list[bytes] = []
    size = 0
    with _open(archive, entry) as stream:
        while chunk := _read_counted(stream, entry, budget, limits, size):
            size += len(chunk)
            if size > xml_limit:
                raise PayloadTooLarge(f"the XML entry '{entry.filename}' exceeds {xml_limit} bytes")
            parts.append(chunk)
    return b"".join(parts)


def _store_entry(
    archive: zipfile.ZipFile,
    entry: zipfile.ZipInfo,
    blobs: BlobStore,
    budget: _Budget,
    limits: ZipLimits,
) -> AttachmentRecord:
    writer = blobs.writer()
    try:
        size = 0
        with _open(archive, entry) as stream:
            while chunk := _read_counted(stream, entry, budget, limits, size):
                if size == 0 and chunk.startswith(ZIP_MAGIC):
                    raise NestedZip(
                        f"ZIP entry '{entry.filename}' is itself a ZIP; nested archives are refused"
                    )
                size += len(chunk)
                writer.write(chunk)
        sha = writer.commit()
    except BaseException:
        writer.discard()
        raise
    content_type = mimetypes.guess_type(entry.filename)[0] or "application/octet-stream"
    return AttachmentRecord(
        name=entry.filename, content_type=content_type, sha256=sha, size=writer.size
    )
