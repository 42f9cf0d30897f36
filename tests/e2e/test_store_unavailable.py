"""When the store cannot take a write, the sender gets 503 and nothing is half-stored."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.conftest import DEMO_SENDER_TOKEN, sample
from tests.support.gateway_process import GatewayProcess
from tests.support.messages import with_new_uuid

XML = {"Authorization": f"Bearer {DEMO_SENDER_TOKEN}", "Content-Type": "application/xml"}


@pytest.fixture
def gateway_settings() -> dict[str, str]:
    return {"XOEV_GATEWAY_SQLITE_BUSY_SECONDS": "0.5"}


def test_locked_database_gives_503_and_the_retry_is_accepted(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    message_uuid, body = with_new_uuid(sample("hundesteuer/valid/anmeldung-koeln.xml"))
    db = tmp_path / "data" / "gateway.db"
    locker = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    try:
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            refused = client.post("/v1/submissions", content=body, headers=XML)
    finally:
        locker.execute("ROLLBACK")
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"]
    assert refused.json()["type"].endswith("/unavailable")
    rows = locker.execute(
        "SELECT count(*) FROM submissions WHERE message_uuid = ?", (message_uuid,)
    ).fetchone()
    assert rows == (0,)
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        accepted = client.post("/v1/submissions", content=body, headers=XML)
    assert accepted.status_code == 202
    counts = [
        locker.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        for table in ("submissions", "deliveries")
    ]
    locker.close()
    assert counts[0] == 1 and counts[1] == 2  # Köln fans out to two destinations
