"""A fault switch that a test sets and a server process consumes: ``<mode> <count>`` in a file.

Only the server process takes faults (one at a time), so no locking is needed.
"""

from __future__ import annotations

from pathlib import Path


def set_fault(path: Path, mode: str, count: int) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{mode} {count}")
    tmp.replace(path)


def take_fault(path: Path) -> str | None:
    try:
        mode, count = path.read_text().split()
    except (FileNotFoundError, ValueError):
        return None
    remaining = int(count) - 1
    if remaining > 0:
        set_fault(path, mode, remaining)
    else:
        path.unlink(missing_ok=True)
    return mode
