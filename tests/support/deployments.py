"""A small gateway configuration for the retention and transport tests, and the gateway
running it as real processes: embedded (``serve`` on SQLite) or scaled (``api`` +
``worker`` on PostgreSQL and RabbitMQ)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import DEMO_ADMIN_TOKEN, DEMO_SENDER_TOKEN
from tests.support.gateway_process import REPO, GatewayProcess, gateway_env
from tests.support.scaled import ScaledGateway
from tests.support.services import postgres_database

SENDER = {"Authorization": f"Bearer {DEMO_SENDER_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {DEMO_ADMIN_TOKEN}"}
KOELN = "hundesteuer/valid/anmeldung-koeln.xml"  # 05315000 → archive (works)
STUTTGART = "hundesteuer/valid/anmeldung-stuttgart.xml"  # 08111000 → broken (dead at once)


def write_config(config_dir: Path, retention: str, extra: str = "") -> Path:
    """Köln goes to a working file drop, Stuttgart to one that cannot write (its directory
    lies under a plain file: an OSError naming the server path, dead after one attempt)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "deploy" / "config" / "senders.yaml", config_dir / "senders.yaml")
    (config_dir.parent / "blocker").write_text("a file where a directory should be")
    (config_dir / "routes.yaml").write_text(
        "destinations:\n"
        "  archive: {adapter: filedrop, settings: {directory: ../out/archive}}\n"
        "  broken:\n"
        "    adapter: filedrop\n"
        "    settings: {directory: ../blocker/broken}\n"
        "    max_attempts: 1\n"
        "routes:\n"
        "  - {municipality: '05315000', service: '*', destinations: [archive]}\n"
        "  - {municipality: '08111000', service: '*', destinations: [broken]}\n"
    )
    (config_dir / "retention.yaml").write_text(retention + extra)
    return config_dir


@dataclass
class Deployment:
    url: str
    data_dir: Path
    env: dict[str, str]
    payload: Callable[[str], Any]
    """The stored XML of a submission (None once erased), read from the database."""

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway", *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    @property
    def blob_files(self) -> list[Path]:
        root = self.data_dir / "blobs"
        return sorted(p for p in root.glob("??/*") if p.is_file()) if root.exists() else []


@asynccontextmanager
async def embedded(tmp_path: Path, config_dir: Path, **settings: str) -> AsyncIterator[Deployment]:
    env = gateway_env(tmp_path / "data", config_dir, XOEV_GATEWAY_POLL_SECONDS="0.2", **settings)
    proc = GatewayProcess("serve", env, tmp_path / "serve.log")
    database = tmp_path / "data" / "gateway.db"

    async def payload(submission_id: str) -> Any:
        with sqlite3.connect(database) as conn:
            (row,) = conn.execute("SELECT xml FROM submissions WHERE id = ?", (submission_id,))
            return row[0]

    try:
        await asyncio.to_thread(proc.wait_ready)
        yield Deployment(proc.url, tmp_path / "data", env, payload)
    finally:
        proc.stop()


@asynccontextmanager
async def scaled(
    tmp_path: Path, config_dir: Path, amqp_url: str, **settings: str
) -> AsyncIterator[Deployment]:
    async with postgres_database() as database_url:
        gw = ScaledGateway(tmp_path, config_dir, database_url, amqp_url, extra_env=settings)

        async def payload(submission_id: str) -> Any:
            (row,) = await gw.query(f"SELECT xml FROM submissions WHERE id = '{submission_id}'")
            return row["xml"]

        try:
            (api,), _ = await asyncio.to_thread(gw.start_all, 1, 1)
            yield Deployment(api.url, tmp_path / "data", gw.env, payload)
        finally:
            gw.stop_all()


def wait_for(
    client: httpx.Client,
    location: str,
    done: Callable[[dict[str, Any]], bool],
    headers: dict[str, str] = ADMIN,
    timeout: float = 30,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view: dict[str, Any] = client.get(location, headers=headers).json()
        if done(view):
            return view
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout}s: {view}")
        time.sleep(0.1)


def settled(view: dict[str, Any]) -> bool:
    return all(d["state"] != "pending" for d in view["deliveries"])


def erased(view: dict[str, Any]) -> bool:
    return bool(view["payload"]["erased"])


def pdf(size: int = 2 * 1024 * 1024) -> bytes:
    return b"%PDF-1.7\n" + os.urandom(size)
