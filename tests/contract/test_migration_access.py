"""Migration 0006_access on a database that already holds submissions: the UUID becomes
unique per sender (an unnamed constraint on SQLite, a named one on PostgreSQL), nothing
stored is lost, and the audit log table appears."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from gateway.store.database import Database
from gateway.store.migrate import alembic_config
from tests.support.services import postgres_database

ROW = (
    "INSERT INTO submissions (id, message_uuid, sender, content_sha256, message_type, "
    "schema_set, municipality, recipient, config_version, received_at) VALUES "
    "(:id, 'u-1', :sender, 'c', 't', 's', '08111000', 'ags:08111000', 'v', :at)"
)


def insert(conn: Connection, submission_id: str, sender: str) -> None:
    conn.execute(text(ROW), {"id": submission_id, "sender": sender, "at": time.time()})


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.services)]
)
async def test_upgrade_from_0002_keeps_data_and_scopes_the_uuid_per_sender(
    database: str, tmp_path: Path
) -> None:
    async def check(db: Database) -> None:
        await db.write(lambda conn: command.upgrade(alembic_config(conn), "0002"))
        await db.write(lambda conn: insert(conn, "s-1", "portal"))
        with pytest.raises(IntegrityError):  # before: one UUID for everybody
            await db.write(lambda conn: insert(conn, "s-2", "other"))
        await db.write(lambda conn: command.upgrade(alembic_config(conn), "head"))
        await db.write(lambda conn: insert(conn, "s-2", "other"))
        with pytest.raises(IntegrityError):  # still unique for the same sender
            await db.write(lambda conn: insert(conn, "s-3", "portal"))
        rows = await db.read(
            lambda conn: conn.execute(text("SELECT id, sender FROM submissions ORDER BY id")).all()
        )
        assert [tuple(r) for r in rows] == [("s-1", "portal"), ("s-2", "other")]
        count = await db.read(
            lambda conn: conn.execute(text("SELECT count(*) FROM audit_log")).scalar()
        )
        assert count == 0
        # Down again: possible once no UUID is shared between senders.
        await db.write(lambda conn: conn.execute(text("DELETE FROM submissions WHERE id = 's-2'")))
        await db.write(lambda conn: command.downgrade(alembic_config(conn), "0002"))
        with pytest.raises(IntegrityError):
            await db.write(lambda conn: insert(conn, "s-2", "other"))

    if database == "sqlite":
        db = Database.open(f"sqlite:///{tmp_path / 'gateway.db'}")
        try:
            await check(db)
        finally:
            await db.close()
    else:
        async with postgres_database() as url:
            db = Database.open(url)
            try:
                await check(db)
            finally:
                await db.close()
