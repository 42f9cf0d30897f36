"""The real PostgreSQL and RabbitMQ on 127.0.0.1, with a unique database / vhost per use.

Unreachable services FAIL the test with a message saying what to start: tests marked
``services`` must never be skipped silently (``scripts/services.sh`` starts them in CI).
Both services are shared with colleagues' concurrent runs, hence the unique names, and
every stop in :func:`rabbitmq_stopped` / :func:`postgres_restart` is undone in ``finally``.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import asyncpg
import pytest

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
AMQP_BASE = "amqp://guest:guest@127.0.0.1:5672"


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
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin = await _connect_admin()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def _connect_admin(patience: float = 30.0) -> asyncpg.Connection:
    """Connect as admin, waiting out a restart that a test may just have done."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        except (OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


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


@contextmanager
def rabbitmq_stopped() -> Iterator[None]:
    """Stop the RabbitMQ application (the node stays up) and always start it again."""
    _rabbitmqctl("stop_app")
    try:
        yield
    finally:
        _rabbitmqctl("start_app")


def postgres_cluster() -> tuple[str, str]:
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir())
    if not versions:
        pytest.fail("no PostgreSQL cluster under /etc/postgresql", pytrace=False)
    return versions[-1], "main"


@contextmanager
def postgres_stopped() -> Iterator[None]:
    """Stop the PostgreSQL cluster (pg_ctlcluster stops in fast mode) and always restart it."""
    version, cluster = postgres_cluster()
    ctl = ["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster]
    subprocess.run([*ctl, "stop"], check=True, capture_output=True, timeout=60)
    try:
        yield
    finally:
        subprocess.run([*ctl, "start"], check=True, capture_output=True, timeout=60)
