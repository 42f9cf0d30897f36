"""The Alembic migrations create exactly the tables of ``gateway/store/tables.py``, on a
fresh SQLite database and a fresh PostgreSQL database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from gateway.store.database import Database
from gateway.store.tables import metadata
from tests.contract.backends import postgres_database_migrated, sqlite_database

DATABASES = {"sqlite": sqlite_database, "postgresql": postgres_database_migrated}


def differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, metadata))


@pytest.mark.parametrize(
    "database",
    [
        pytest.param("sqlite"),
        pytest.param("postgresql", marks=pytest.mark.services),
    ],
)
async def test_migrations_create_exactly_the_declared_tables(database: str, tmp_path: Path) -> None:
    db: Database
    async with DATABASES[database](tmp_path) as db:
        assert await db.read(differences) == []
