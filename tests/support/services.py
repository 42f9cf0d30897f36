"""The real PostgreSQL and RabbitMQ on 127.0.0.1, with a unique database / vhost per use.

Unreachable services FAIL the test with a message saying what to start: tests marked
``services`` must never be skipped silently (``scripts/services.sh`` starts them in CI).
Both services are shared with colleagues' concurrent runs, hence the unique names; tests
never stop them: an outage is simulated by a forwarder in front (``tests.support.forwarder``).
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import asyncpg
import pytest

POSTGRES_PORT, AMQP_PORT = 5432, 5672
PG_ADMIN_DSN = f"postgresql://postgres@127.0.0.1:{POSTGRES_PORT}/postgres"
AMQP_BASE = f"amqp://guest:guest@127.0.0.1:{AMQP_PORT}"


def unique(prefix: str = "xoev_test") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A fresh database ``xoev_test_<random>``; yields its SQLAlchemy URL, drops it after."""
    name = unique()
    try:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at 127.0.0.1:5432 as user postgres ({exc!r}); "
            "run scripts/services.sh (or scripts/test) to start it",
            pytrace=False,
        )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{POSTGRES_PORT}/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def _rabbitmqctl(*args: str) -> None:
    if shutil.which("rabbitmqctl") is None:
        pytest.fail("rabbitmqctl not found: RabbitMQ must be installed locally", pytrace=False)
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        pytest.fail(
            f"rabbitmqctl {' '.join(args)} failed ({done.returncode}): "
            f"{done.stderr.strip() or done.stdout.strip()}; is RabbitMQ running "
            "(scripts/services.sh)?",
            pytrace=False,
        )


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A fresh vhost for guest; yields its AMQP URL; deletes it (and all its queues) after."""
    name = unique()
    _rabbitmqctl("add_vhost", name)
    try:
        _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield f"{AMQP_BASE}/{name}"
    finally:
        subprocess.run(["rabbitmqctl", "delete_vhost", name], capture_output=True, timeout=60)
