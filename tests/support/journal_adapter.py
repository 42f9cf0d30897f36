"""A Fachverfahren stand-in that journals every call, to count duplicates across processes.

Each call appends ``<delivery_id> new|duplicate`` to a shared journal (one small
``O_APPEND`` write, atomic between processes) and opens a case file with ``O_EXCL``: like
a real Fachverfahren that uses the delivery id as idempotency key, a second call with the
same id finds the case and creates no second one.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from gateway.sdk import Adapter, AdapterSettings, Delivery, Receipt


class JournalSettings(AdapterSettings):
    directory: Path
    journal: Path


class JournalAdapter(Adapter[JournalSettings]):
    settings_model = JournalSettings

    async def deliver(self, delivery: Delivery) -> Receipt:
        return await asyncio.to_thread(self._open_case, delivery.delivery_id)

    def _open_case(self, delivery_id: str) -> Receipt:
        self.settings.directory.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.settings.directory / f"{delivery_id}.case", os.O_CREAT | os.O_EXCL)
            os.close(fd)
            outcome = "new"
        except FileExistsError:
            outcome = "duplicate"
        line = f"{delivery_id} {outcome}\n".encode()
        fd = os.open(self.settings.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return Receipt(reference=f"case-{delivery_id[:8]}")


def read_journal(journal: Path) -> list[tuple[str, str]]:
    if not journal.exists():
        return []
    return [
        (parts[0], parts[1])
        for parts in (line.split() for line in journal.read_text().splitlines())
        if len(parts) == 2
    ]
