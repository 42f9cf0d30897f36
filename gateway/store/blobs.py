"""Content-addressed attachment files: ``<root>/<sha[:2]>/<sha>``; the same content is kept once."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from gateway.errors import InsufficientStorage, Unavailable

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """A blob that cannot be written is our outage, never the sender's fault nor a 500:
    no space (or quota) → 507, any other I/O error → 503; the sender retries either way."""
    try:
        yield
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise InsufficientStorage(
                "no space left to store the attachments; retry later"
            ) from exc
        raise Unavailable(f"attachment store unavailable: {exc.strerror or exc!r}") from exc


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def writer(self) -> BlobWriter:
        with storage_errors():
            return BlobWriter(self)


class BlobWriter:
    """Streams one blob to a temp file while hashing; ``commit`` moves it into place.

    ``write`` and ``commit`` raise ``InsufficientStorage`` or ``Unavailable`` instead of
    ``OSError``; whoever gets one calls ``discard``, which leaves no temp file behind."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        fd, name = tempfile.mkstemp(dir=store.root, prefix=".incoming-")
        self._file = os.fdopen(fd, "wb")
        self._tmp = Path(name)
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        with storage_errors():
            self._file.write(chunk)
        self.size += len(chunk)

    def commit(self) -> str:
        with storage_errors():
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            sha = self._hash.hexdigest()
            target = self._store.path(sha)
            target.parent.mkdir(exist_ok=True)
            os.replace(self._tmp, target)
        return sha

    def discard(self) -> None:
        # Closing flushes what is buffered, which fails on a full disk: the temp file
        # goes all the same.
        with contextlib.suppress(OSError):
            self._file.close()
        self._tmp.unlink(missing_ok=True)
