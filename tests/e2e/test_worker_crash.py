"""Kill the worker process while deliveries are leased: nothing is lost, nothing doubled."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx

from tests.conftest import DEMO_SENDER_TOKEN
from tests.support.gateway_process import GatewayProcess, gateway_env
from tests.support.messages import fresh

XML = {"Authorization": f"Bearer {DEMO_SENDER_TOKEN}", "Content-Type": "application/xml"}
COUNT = 60


def leased(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(
            conn.execute("SELECT count(*) FROM work_items WHERE state='leased'").fetchone()[0]
        )


def delivered(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(
            conn.execute("SELECT count(*) FROM deliveries WHERE state='delivered'").fetchone()[0]
        )


def test_killed_worker_loses_nothing_and_duplicates_no_file(
    tmp_path: Path, config_dir: Path
) -> None:
    out = tmp_path / "slow-out"
    (config_dir / "slow.yaml").write_text(
        "destinations:\n"
        "  slow:\n"
        "    adapter: tests.support.slow_adapter:SlowFileDrop\n"
        f"    settings: {{directory: {out}, delay_seconds: 0.2}}\n"
        "routes:\n"
        "  - {municipality: '09162000', service: hundesteuer.anmeldung.0101, destinations: [slow]}\n"
    )
    (config_dir / "routes.yaml").write_text(
        (config_dir / "routes.yaml")
        .read_text()
        .replace('  - {municipality: "09162000", service: "*", destinations: [muenchen-kvr]}\n', "")
    )
    data = tmp_path / "data"
    env = gateway_env(
        data,
        config_dir,
        XOEV_GATEWAY_LEASE_SECONDS="3",
        XOEV_GATEWAY_WORKER_CONCURRENCY="8",
        XOEV_GATEWAY_POLL_SECONDS="0.1",
    )
    api = GatewayProcess("api", env, tmp_path / "api.log")
    worker = GatewayProcess("worker", env, tmp_path / "worker-1.log")
    restarted: GatewayProcess | None = None
    try:
        api.wait_ready()
        worker.wait_ready()
        ids = []
        with httpx.Client(base_url=api.url, timeout=30) as client:
            for _ in range(COUNT):
                resp = client.post(
                    "/v1/submissions",
                    content=fresh("hundesteuer/valid/anmeldung-muenchen.xml"),
                    headers=XML,
                )
                assert resp.status_code == 202, resp.text
                ids.append(resp.json()["id"])
        db = data / "gateway.db"
        deadline = time.monotonic() + 30
        while not (leased(db) > 0 and delivered(db) > 0):
            assert time.monotonic() < deadline, "worker never leased anything"
            time.sleep(0.02)
        worker.kill()
        in_flight = leased(db)
        done_before = delivered(db)
        assert in_flight > 0 and done_before < COUNT

        restarted = GatewayProcess("worker", env, tmp_path / "worker-2.log")
        restarted.wait_ready()
        deadline = time.monotonic() + 60
        while delivered(db) < COUNT:
            assert time.monotonic() < deadline, f"only {delivered(db)} of {COUNT} delivered"
            time.sleep(0.1)
        with httpx.Client(base_url=api.url, timeout=30, headers=XML) as client:
            views = [client.get(f"/v1/submissions/{i}").json() for i in ids]
    finally:
        for proc in (api, worker, restarted):
            if proc is not None:
                proc.stop()

    delivery_ids = {v["deliveries"][0]["id"] for v in views}
    assert {v["status"] for v in views} == {"delivered"}
    assert len(delivery_ids) == COUNT
    xml_files = sorted(p.name for p in out.glob("*.xml"))
    assert xml_files == sorted(f"{d}.xml" for d in delivery_ids)
    assert not list(out.glob(".*.tmp")) or all(
        p.name.removeprefix(".").removesuffix(".tmp")
        in {f"{d}.xml" for d in delivery_ids} | {f"{d}.json" for d in delivery_ids}
        for p in out.glob(".*.tmp")
    )
