"""File drop: writes each delivery into a directory that the Fachverfahren imports from.

Per delivery it writes ``<delivery_id>.xml``, the mapped document when the route maps
fields (as rendered in the mapping's format, named by ``mapped_name``, default
``<delivery_id>.mapped.<json|xml|txt>``), ``<delivery_id>.json`` (metadata) and the
attachments under ``<delivery_id>.attachments/<file_name>`` (``Attachment.file_name``:
unique within the submission, safe on every file system; the metadata lists each
attachment's original ``name`` beside it). Every file goes to a temp name first and
is renamed into place after fsync, so the importer never sees half a file; the metadata
file is written last and marks the delivery complete. Names come from the stable delivery
id, so a redelivery overwrites the same files instead of creating a second case.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import IO

from adapters._mapped import DEFAULT_PATTERN, NamePattern, mapped_file
from gateway.sdk import Adapter, AdapterSettings, Delivery, PermanentDeliveryError, Receipt

# A name or path this file system cannot hold: writing it again cannot succeed.
PERMANENT_ERRNOS = {errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ}

# Its own threads: each delivery waits on two or three fsyncs, and on the default executor
# (cores + 4 threads) concurrent deliveries queued behind each other's disk flushes.
_DISK = ThreadPoolExecutor(32, thread_name_prefix="filedrop")


class FileDropSettings(AdapterSettings):
    directory: Path
    fsync: bool = True
    mapped_name: NamePattern = DEFAULT_PATTERN
    """File name of the mapped document; placeholders in ``adapters._mapped.FIELDS``."""


class FileDropAdapter(Adapter[FileDropSettings]):
    settings_model = FileDropSettings

    async def deliver(self, delivery: Delivery) -> Receipt:
        try:
            return await asyncio.get_running_loop().run_in_executor(_DISK, self._write, delivery)
        except OSError as exc:
            if exc.errno in PERMANENT_ERRNOS:
                raise PermanentDeliveryError(f"cannot write {exc.filename}: {exc}") from None
            raise

    def _write(self, delivery: Delivery) -> Receipt:
        directory = self.settings.directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PermanentDeliveryError(f"cannot create {directory}: {exc}") from exc
        stem = delivery.delivery_id
        if delivery.attachments:
            att_dir = directory / f"{stem}.attachments"
            att_dir.mkdir(exist_ok=True)
            for att in delivery.attachments:
                with att.open() as src:
                    self._atomic(att_dir / att.file_name, partial(_copy, src))
        self._atomic(directory / f"{stem}.xml", lambda f: f.write(delivery.xml))
        mapped = mapped_file(delivery, self.settings.mapped_name)
        if mapped is not None:
            self._atomic(directory / mapped[0], partial(_write_bytes, mapped[1]))
        body = metadata(delivery, mapped[0] if mapped is not None else None)
        self._atomic(directory / f"{stem}.json", lambda f: f.write(body))
        if self.settings.fsync:
            _fsync_dir(directory)
        return Receipt(reference=f"{stem}.xml", message=f"written to {directory}")

    def _atomic(self, target: Path, write: Callable[[IO[bytes]], object]) -> None:
        tmp = target.with_name(f".{target.name}.tmp")
        with tmp.open("wb") as fh:
            write(fh)
            if self.settings.fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, target)


def metadata(delivery: Delivery, mapped_name: str | None = None) -> bytes:
    """The ``<delivery_id>.json`` that marks a delivery complete (shared with ``sftp``)."""
    meta = {
        "delivery_id": delivery.delivery_id,
        "submission_id": delivery.submission_id,
        "message_uuid": delivery.message_uuid,
        "message_type": delivery.message_type,
        "municipality": delivery.municipality,
        "sender": delivery.sender,
        "payload": dict(delivery.payload) if delivery.payload is not None else None,
        "payload_format": delivery.payload_format,
        "payload_file": mapped_name,
        "attachments": [
            {
                "name": a.name,
                "file_name": a.file_name,
                "content_type": a.content_type,
                "sha256": a.sha256,
                "size": a.size,
            }
            for a in delivery.attachments
        ],
    }
    return json.dumps(meta, ensure_ascii=False, indent=2).encode()


def _write_bytes(content: bytes, dst: IO[bytes]) -> None:
    dst.write(content)


def _copy(src: IO[bytes], dst: IO[bytes]) -> None:
    shutil.copyfileobj(src, dst, 1024 * 1024)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
