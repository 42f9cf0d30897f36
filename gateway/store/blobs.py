"""Content-addressed attachment files: ``<root>/<sha[:2]>/<sha>``; the same content is kept once.

Files and directories are private to the gateway's user (0600/0700): they hold citizens'
documents.

Removing a blob races with an upload of the same content: the upload renames its file onto
the same path, then its accept commits the reference. Two guards keep an accepted
submission's blob from being removed in between:

- ``uploading()``: an upload holds a shared ``flock`` on ``<root>/.lock`` from before its
  first blob until its accept has settled; a prompt removal (a rejected upload, an erasure)
  takes the lock exclusively *without waiting* and, if it cannot, leaves the blob to the
  sweep. The lock works across processes on one host's file system.
- the sweep (``stale``) only considers blobs older than a grace period far longer than any
  request: an upload in flight has just renamed its file, so it is never older.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from gateway.errors import InsufficientStorage, Unavailable

PRIVATE_DIR = 0o700
INCOMING = ".incoming-"
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


def private_dir(path: Path) -> Path:
    """``mkdir -p`` with mode 0700 for what it creates, and 0700 for ``path`` itself."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(PRIVATE_DIR)
    return path


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = private_dir(root)
        self._lock_path = self.root / ".lock"

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def writer(self) -> BlobWriter:
        with storage_errors():
            return BlobWriter(self)

    def _lock_file(self) -> int:
        return os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)

    @contextlib.asynccontextmanager
    async def uploading(self) -> AsyncIterator[None]:
        """Held by an upload from before its first blob until its accept settled. Waits
        (in a thread, not on the event loop) while a removal holds the lock: a moment."""
        fd = await asyncio.to_thread(self._lock_file)
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    @contextlib.asynccontextmanager
    async def no_uploads(self) -> AsyncIterator[bool]:
        """Yields whether no upload is in flight on this host (then none starts meanwhile);
        never waits for one."""
        fd = await asyncio.to_thread(self._lock_file)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                free = True
            except BlockingIOError:
                free = False
            yield free
        finally:
            os.close(fd)

    def remove(self, sha256: str) -> bool:
        try:
            self.path(sha256).unlink()
        except FileNotFoundError:
            return False
        return True

    def stale(self, older_than: float) -> Iterator[tuple[str | None, Path, int]]:
        """Blobs (sha, path, size) and abandoned temp files (None, path, size) last written
        more than ``older_than`` seconds ago."""
        cutoff = time.time() - older_than
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(INCOMING):
                stat = entry.stat()
                if stat.st_mtime < cutoff:
                    yield None, entry, stat.st_size
            elif entry.is_dir() and len(entry.name) == 2:
                for blob in sorted(entry.iterdir()):
                    stat = blob.stat()
                    if stat.st_mtime < cutoff:
                        yield blob.name, blob, stat.st_size


class BlobWriter:
    """Streams one blob to a temp file while hashing; ``commit`` moves it into place.

    ``write`` and ``commit`` raise ``InsufficientStorage`` or ``Unavailable`` instead of
    ``OSError``; whoever gets one calls ``discard``, which leaves no temp file behind."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        # mkstemp creates the file 0600.
        fd, name = tempfile.mkstemp(dir=store.root, prefix=INCOMING)
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
            target.parent.mkdir(mode=PRIVATE_DIR, exist_ok=True)
            os.replace(self._tmp, target)
        return sha

    def discard(self) -> None:
        # Closing flushes what is buffered, which fails on a full disk: the temp file
        # goes all the same.
        with contextlib.suppress(OSError):
            self._file.close()
        self._tmp.unlink(missing_ok=True)
