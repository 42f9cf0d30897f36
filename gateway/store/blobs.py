"""Content-addressed attachment files: ``<root>/<sha[:2]>/<sha>``; the same content is kept once."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def writer(self) -> BlobWriter:
        return BlobWriter(self)


class BlobWriter:
    """Streams one blob to a temp file while hashing; ``commit`` moves it into place."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        fd, name = tempfile.mkstemp(dir=store.root, prefix=".incoming-")
        self._file = os.fdopen(fd, "wb")
        self._tmp = Path(name)
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self._file.write(chunk)
        self.size += len(chunk)

    def commit(self) -> str:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        sha = self._hash.hexdigest()
        target = self._store.path(sha)
        target.parent.mkdir(exist_ok=True)
        os.replace(self._tmp, target)
        return sha

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._tmp.unlink(missing_ok=True)
