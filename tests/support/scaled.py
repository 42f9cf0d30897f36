"""Scaled mode as real processes: N ``api`` and M ``worker`` processes on PostgreSQL and
RabbitMQ, plus a client that streams submissions at them and a look into the database."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from tests.conftest import DEMO_SENDER_TOKEN, sample
from tests.support.gateway_process import REPO, GatewayProcess, gateway_env
from tests.support.messages import with_new_uuid
from tests.support.services import unique

XML = {"Authorization": f"Bearer {DEMO_SENDER_TOKEN}", "Content-Type": "application/xml"}
KOELN = "hundesteuer/valid/anmeldung-koeln.xml"  # recipient 05315000


def write_config(config_dir: Path, destinations: str, route_to: list[str]) -> Path:
    """Senders from the example config; only the given destinations, all Köln traffic to
    ``route_to``."""
    config_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "deploy" / "config" / "senders.yaml", config_dir / "senders.yaml")
    (config_dir / "routes.yaml").write_text(
        f"destinations:\n{destinations}"
        "routes:\n"
        f"  - {{municipality: '05315000', service: '*', destinations: [{', '.join(route_to)}]}}\n"
    )
    return config_dir


@dataclass
class ScaledGateway:
    tmp: Path
    config_dir: Path
    database_url: str
    amqp_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: list[GatewayProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.env = gateway_env(
            self.tmp / "data",
            self.config_dir,
            XOEV_GATEWAY_BROKER="rabbitmq",
            XOEV_GATEWAY_DATABASE_URL=self.database_url,
            XOEV_GATEWAY_AMQP_URL=self.amqp_url,
            XOEV_GATEWAY_RABBITMQ_PREFIX=unique("e2e"),
            XOEV_GATEWAY_RABBITMQ_DELAY_TIERS="[0.3, 0.6, 1, 2, 4]",
            XOEV_GATEWAY_POLL_SECONDS="0.2",
            **self.extra_env,
        )

    def start(self, command: str) -> GatewayProcess:
        proc = GatewayProcess(command, self.env, self.tmp / f"{command}-{len(self.processes)}.log")
        self.processes.append(proc)
        return proc

    def start_all(
        self, apis: int, workers: int
    ) -> tuple[list[GatewayProcess], list[GatewayProcess]]:
        started = (
            [self.start("api") for _ in range(apis)],
            [self.start("worker") for _ in range(workers)],
        )
        for proc in [*started[0], *started[1]]:
            proc.wait_ready(timeout=60)
        return started

    def stop_all(self) -> None:
        for proc in self.processes:
            proc.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.log.name}\n{p.log.read_text()[-4000:]}" for p in self.processes)

    async def query(self, sql: str) -> list[asyncpg.Record]:
        dsn = self.database_url.replace("postgresql+asyncpg://", "postgresql://")
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    async def delivery_states(self) -> dict[str, int]:
        rows = await self.query("SELECT state, count(*) AS n FROM deliveries GROUP BY state")
        return {r["state"]: int(r["n"]) for r in rows}

    async def wait_delivered(self, expected: int, timeout: float) -> float:
        """Wait until ``expected`` deliveries are delivered; returns the seconds it took."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        states: dict[str, int] = {}
        while loop.time() - started < timeout:
            try:
                states = await self.delivery_states()
            except (OSError, asyncpg.PostgresError):
                states = {}
            if states.get("delivered", 0) >= expected:
                return loop.time() - started
            await asyncio.sleep(0.25)
        raise AssertionError(
            f"not all delivered after {timeout}s: {states}\n"
            f"queues holding messages: {self.queue_depths()}\n{self.logs()}"
        )

    def queue_depths(self) -> str:
        """Where undelivered items sit (work, delay-tier or dead-letter queues)."""
        vhost = self.amqp_url.rsplit("/", 1)[-1]
        listing = subprocess.run(
            ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "messages"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        rows = [line.split("\t") for line in listing.stdout.splitlines()]
        held = [(row[0], row[1]) for row in rows if len(row) == 2 and row[1].isdigit()]
        return ", ".join(f"{name}={n}" for name, n in held if n != "0") or "none"


@dataclass
class StreamResult:
    accepted: dict[str, str]  # nachrichtenUUID -> submission id (each got a 202)
    unavailable: int  # 503 answers (each retried until 202)
    seconds: float


async def stream(
    urls: list[str],
    count: int,
    *,
    concurrency: int = 24,
    on_accepted: Callable[[int], None] = lambda n: None,
) -> StreamResult:
    """Send ``count`` distinct submissions round-robin; retry 503s and lost connections
    (the nachrichtenUUID makes that safe) until every one got its 202."""
    accepted: dict[str, str] = {}
    unavailable = 0
    body = sample(KOELN)
    gate = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def one(client: httpx.AsyncClient, i: int) -> None:
        nonlocal unavailable
        message_uuid, xml = with_new_uuid(body)
        async with gate:
            for attempt in range(600):
                url = urls[(i + attempt) % len(urls)]
                try:
                    resp = await client.post(f"{url}/v1/submissions", content=xml, headers=XML)
                except httpx.TransportError:
                    await asyncio.sleep(0.2)
                    continue
                if resp.status_code == 202:
                    accepted[message_uuid] = resp.json()["id"]
                    on_accepted(len(accepted))
                    return
                assert resp.status_code == 503, resp.text
                unavailable += 1
                await asyncio.sleep(0.2)
            raise AssertionError(f"{message_uuid} never accepted")

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(one(client, i) for i in range(count)))
    return StreamResult(accepted, unavailable, loop.time() - started)
