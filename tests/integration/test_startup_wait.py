"""A process started while PostgreSQL or RabbitMQ is down waits for them (``STARTUP_WAIT``)
instead of exiting, and then works; past the wait it exits with the cause in one line.

The services "come up" by a TCP forwarder starting on the port the process was given, so
the machine's real PostgreSQL and RabbitMQ are never stopped for this."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.forwarder import forwarding, redirected
from tests.support.gateway_process import REPO, GatewayProcess, free_port, gateway_env
from tests.support.scaled import ScaledGateway, stream, write_config
from tests.support.services import AMQP_PORT, POSTGRES_PORT, postgres_database

pytestmark = [pytest.mark.services]


async def _wait_for_log(proc: GatewayProcess, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text.encode() not in proc.log.read_bytes():
        assert proc.proc.poll() is None, f"exited while waiting: {proc.log.read_text()}"
        assert time.monotonic() < deadline, f"no '{text}': {proc.log.read_text()}"
        await asyncio.sleep(0.1)


async def test_worker_waits_for_database_and_broker_then_delivers(
    tmp_path: Path, amqp_url: str
) -> None:
    drop = tmp_path / "drop"
    config = write_config(
        tmp_path / "config",
        f"  drop:\n    adapter: filedrop\n    settings: {{directory: {drop}, fsync: false}}\n",
        ["drop"],
    )
    pg_port, amqp_port = free_port(), free_port()
    async with postgres_database() as database_url:
        gw = ScaledGateway(
            tmp_path,
            config,
            redirected(database_url, POSTGRES_PORT, pg_port),
            redirected(amqp_url, AMQP_PORT, amqp_port),
            {"XOEV_GATEWAY_STARTUP_WAIT": "60"},
        )
        worker = gw.start("worker")
        try:
            await _wait_for_log(worker, "database not reachable yet")
            async with forwarding(pg_port, POSTGRES_PORT):
                await _wait_for_log(worker, "broker not reachable yet")
                async with forwarding(amqp_port, AMQP_PORT):
                    await asyncio.to_thread(worker.wait_ready, 30)
                    api = gw.start("api")
                    await asyncio.to_thread(api.wait_ready, 60)
                    result = await stream([api.url], 5)
                    await gw.wait_delivered(5, timeout=30)
                    await asyncio.to_thread(gw.stop_all)
        finally:
            await asyncio.to_thread(gw.stop_all)
    assert len(result.accepted) == 5
    assert len(list(drop.glob("*.xml"))) == 5


def _worker_until_exit(tmp_path: Path, **settings: str) -> tuple[str, float]:
    """Run ``xoev-gateway worker`` until it exits on its own; its stderr and seconds."""
    env = gateway_env(tmp_path / "data", REPO / "deploy" / "config", **settings)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "worker"],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode != 0, result.stderr
    return result.stderr, time.monotonic() - started


def test_past_the_wait_the_worker_exits_with_the_cause(tmp_path: Path) -> None:
    stderr, seconds = _worker_until_exit(
        tmp_path,
        XOEV_GATEWAY_BROKER="rabbitmq",
        XOEV_GATEWAY_AMQP_URL=f"amqp://guest:guest@127.0.0.1:{free_port()}/",
        XOEV_GATEWAY_STARTUP_WAIT="1",
    )
    assert "broker not reachable yet, retrying" in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: RabbitMQ unreachable:"), stderr
    assert seconds < 30


def test_an_unusable_sqlite_file_fails_at_once(tmp_path: Path) -> None:
    stderr, seconds = _worker_until_exit(
        tmp_path,
        XOEV_GATEWAY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/missing/dir/gateway.db",
    )
    assert "not reachable yet" not in stderr  # nothing to wait for
    assert stderr.strip().splitlines()[-1].startswith("error: store unavailable")
    assert seconds < 20  # the default wait is 60 s
