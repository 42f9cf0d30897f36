"""Runs the Alembic migrations shipped inside the package (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from gateway.store.database import Database, unavailable_on_failure

MIGRATIONS = Path(__file__).parent / "migrations"

# Any 64-bit number; serialises concurrent migrations of several processes on PostgreSQL.
MIGRATION_LOCK = 0x786F65762D6777


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Several api/worker processes start at once; DDL is transactional here, so
        # whoever waits on the lock then finds the schema at head.
        connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
    command.upgrade(alembic_config(connection), "head")


async def migrate(db: Database) -> None:
    """Bring the database to the newest schema, in one write transaction."""
    with unavailable_on_failure("store"):
        await db.write(upgrade)
