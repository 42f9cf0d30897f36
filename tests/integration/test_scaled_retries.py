"""Scaled mode: a destination that fails for a while is retried with growing delays (through
the RabbitMQ delay tiers) and delivered when it recovers; a destination that refuses
permanently ends in the dead-letter queue with its reason, and a replay after the fix
delivers. Meanwhile the failing destinations never hold up a healthy one."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from pathlib import Path
from statistics import mean

import httpx
import pytest

from tests.conftest import DEMO_ADMIN_TOKEN
from tests.support.scaled import ScaledGateway, stream, write_config
from tests.support.services import postgres_database

pytestmark = [pytest.mark.services, pytest.mark.slow]

COUNT = 20
ADMIN = {"Authorization": f"Bearer {DEMO_ADMIN_TOKEN}"}


async def test_retries_back_off_then_deliver_and_dead_letters_replay(
    tmp_path: Path, amqp_url: str
) -> None:
    flaky_fixed, refuser_fixed = tmp_path / "flaky-fixed", tmp_path / "refuser-fixed"
    config = write_config(
        tmp_path / "config",
        "  flaky:\n"
        "    adapter: tests.support.flaky_adapter:FlakyAdapter\n"
        f"    settings: {{switch: {flaky_fixed}}}\n"
        "    max_attempts: 50\n"
        "    backoff_base_seconds: 0.2\n"
        "    backoff_max_seconds: 4\n"
        "  refuser:\n"
        "    adapter: tests.support.flaky_adapter:FlakyAdapter\n"
        f"    settings: {{switch: {refuser_fixed}, permanent: true}}\n"
        "  healthy:\n"
        "    adapter: filedrop\n"
        f"    settings: {{directory: {tmp_path / 'healthy'}, fsync: false}}\n",
        ["flaky", "refuser", "healthy"],
    )
    async with postgres_database() as database_url:
        gw = ScaledGateway(tmp_path, config, database_url, amqp_url)
        try:
            (api,), _ = await asyncio.to_thread(gw.start_all, 1, 1)
            result = await stream([api.url], COUNT)
            assert len(result.accepted) == COUNT

            # The healthy destination is served while the others fail.
            await wait_for(gw, "healthy", "delivered", COUNT)
            await wait_for(gw, "refuser", "dead", COUNT)
            # Let the flaky one fail for a while: at least 6 attempts each.
            await wait_until(
                gw, "SELECT min(attempts) AS n FROM deliveries WHERE destination = 'flaky'", 6
            )
            flaky_fixed.touch()
            await wait_for(gw, "flaky", "delivered", COUNT)
            gaps = await attempt_gaps(gw, "flaky")

            async with httpx.AsyncClient(base_url=api.url, headers=ADMIN, timeout=30) as admin:
                letters = (await admin.get("/v1/admin/dead-letters")).json()
                assert len(letters) == COUNT
                assert {d["destination"] for d in letters} == {"refuser"}
                assert {d["reason"] for d in letters} == {
                    "permanent: Fachverfahren refuses the case (test)"
                }
                refuser_fixed.touch()
                replayed = (await admin.post("/v1/admin/dead-letters/replay", json={})).json()
                assert len(replayed["replayed"]) == COUNT
                await wait_for(gw, "refuser", "delivered", COUNT)
                assert (await admin.get("/v1/admin/dead-letters")).json() == []
        finally:
            await asyncio.to_thread(gw.stop_all)

    # Growing delays: on average, later retries wait longer than the first ones.
    first, later = mean(gaps[1]), mean(gaps[5])
    assert later > 1.5 * first, (first, later)
    print(f"\nmean wait before attempt 2: {first:.2f}s, before attempt 6: {later:.2f}s")


async def wait_until(gw: ScaledGateway, sql: str, at_least: int, timeout: float = 60) -> None:
    for _ in range(int(timeout / 0.2)):
        rows = await gw.query(sql)
        if rows and rows[0]["n"] is not None and rows[0]["n"] >= at_least:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out: {sql} >= {at_least}\n{gw.logs()}")


async def wait_for(gw: ScaledGateway, destination: str, state: str, count: int) -> None:
    await wait_until(
        gw,
        "SELECT count(*) AS n FROM deliveries "
        f"WHERE destination = '{destination}' AND state = '{state}'",
        count,
    )


async def attempt_gaps(gw: ScaledGateway, destination: str) -> dict[int, list[float]]:
    """Seconds between attempt n and n+1 of each delivery, keyed by n."""
    rows = await gw.query(
        "SELECT e.delivery_id, e.at, e.detail FROM events e JOIN deliveries d "
        f"ON d.id = e.delivery_id WHERE d.destination = '{destination}' "
        "AND e.kind = 'delivery.attempt' ORDER BY e.at"
    )
    times: dict[str, dict[int, float]] = defaultdict(dict)
    for r in rows:
        times[r["delivery_id"]][json.loads(r["detail"])["attempt"]] = r["at"]
    gaps: dict[int, list[float]] = defaultdict(list)
    for attempts in times.values():
        for n, at in attempts.items():
            if n + 1 in attempts:
                gaps[n].append(attempts[n + 1] - at)
    return gaps
