"""What the store needs from the file system: the SQLite file it opened still being the one
at its path, and room to write.

Deleting (or replacing) a SQLite file under a running process goes unnoticed by SQLite: the
process keeps writing into the unlinked inode, and everything it commits from then on is
gone with the next restart. A ``stat`` of the path (a few microseconds) compared with the
device and inode seen at start tells; the ``Database`` does it around every transaction.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import StoreFileLost


class SqliteFileWatch:
    """Notices that ``path`` no longer names the file this process opened."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._identity: tuple[int, int] | None = None
        self._lost: StoreFileLost | None = None
        self._lock = threading.Lock()

    def remember(self) -> None:
        """Take the file's identity (once: the first connection has created the file)."""
        if self._identity is None:
            st = os.stat(self.path)
            self._identity = (st.st_dev, st.st_ino)

    def lost(self) -> tuple[StoreFileLost | None, bool]:
        """``(error, first)``: the error while the file is lost (for good: a file that
        appears at the path later is another one), ``first`` for exactly one caller, the
        one that noticed."""
        if self._lost is not None:
            return self._lost, False
        if self._identity is None:
            return None, False
        try:
            st = os.stat(self.path)
            now: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            now = None
        if now == self._identity:
            return None, False
        with self._lock:
            if self._lost is not None:
                return self._lost, False
            what = "deleted" if now is None else "replaced by another file"
            self._lost = StoreFileLost(
                f"the SQLite database {self.path} was {what} while the gateway was running; "
                "it refuses submissions until it is restarted on a database file"
            )
            return self._lost, True


@dataclass(frozen=True)
class Space:
    path: Path
    free: int
    total: int

    @property
    def free_percent(self) -> float:
        return 100.0 * self.free / self.total if self.total else 0.0


def space(path: Path) -> Space:
    """Free space for an unprivileged writer (``f_bavail``) on ``path``'s file system."""
    st = os.statvfs(path)
    return Space(path, st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize)


def below_floor(paths: list[Path], min_free_bytes: int, min_free_percent: float) -> str | None:
    """Why the store's file systems are too full to take more, or ``None``."""
    for path in paths:
        got = space(path)
        if got.free < min_free_bytes or got.free_percent < min_free_percent:
            return (
                f"{path}: {got.free} bytes ({got.free_percent:.1f} %) free, below the floor "
                f"of {min_free_bytes} bytes and {min_free_percent} % (XOEV_GATEWAY_MIN_FREE_BYTES, "
                "XOEV_GATEWAY_MIN_FREE_PERCENT)"
            )
    return None
