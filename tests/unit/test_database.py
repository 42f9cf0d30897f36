"""``Database`` on SQLite: the URLs users configure, and a write transaction that awaits."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Connection, insert, select

from gateway.store.database import Database
from gateway.store.migrate import migrate
from gateway.store.states import WorkState
from gateway.store.tables import work_items


def add_item(conn: Connection) -> str:
    conn.execute(
        insert(work_items).values(
            delivery_id="d-1", destination="x", state=WorkState.OUTBOX, available_at=0.0
        )
    )
    return "d-1"


def states(conn: Connection) -> list[str]:
    return list(conn.execute(select(work_items.c.state)).scalars())


@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+aiosqlite"])
async def test_sqlite_urls_of_earlier_versions_still_open(scheme: str, tmp_path: Path) -> None:
    db = Database.open(f"{scheme}:///{tmp_path / 'gateway.db'}")
    try:
        await migrate(db)
        assert db.dialect == "sqlite"
        await db.write(add_item)
        assert await db.read(states) == ["outbox"]
    finally:
        await db.close()
    assert (tmp_path / "gateway.db").exists()


async def test_a_write_that_awaits_commits_after_and_rolls_back_on_failure(
    tmp_path: Path,
) -> None:
    db = Database.open(f"sqlite:///{tmp_path / 'gateway.db'}")
    seen: list[str] = []

    async def refuse(delivery_id: str) -> None:
        seen.append(delivery_id)
        raise RuntimeError("broker said no")

    async def accept(delivery_id: str) -> None:
        seen.append(delivery_id)

    def mark_ready(conn: Connection, _delivery_id: str) -> None:
        conn.execute(work_items.update().values(state=WorkState.READY))

    try:
        await migrate(db)
        with pytest.raises(RuntimeError, match="broker said no"):
            await db.write_awaiting(add_item, refuse, mark_ready)
        assert await db.read(states) == []
        assert await db.write_awaiting(add_item, accept, mark_ready) == "d-1"
        assert await db.read(states) == ["ready"]
        assert seen == ["d-1", "d-1"]
    finally:
        await db.close()
