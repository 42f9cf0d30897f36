"""Leases under real processes: a delivery that outlasts its lease stays with its worker
(the heartbeat renews it), and a SIGKILLed worker's items come back within one lease
(30 s by default, formerly 300 s), with no duplicate case at the reference Fachverfahren,
which dedupes by the delivery id it gets as ``Idempotency-Key``."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.conftest import DEMO_SENDER_TOKEN
from tests.support.gateway_process import GatewayProcess, gateway_env
from tests.support.messages import fresh
from tests.support.servers import ReferenceFachverfahren, reference_fachverfahren

XML = {"Authorization": f"Bearer {DEMO_SENDER_TOKEN}", "Content-Type": "application/xml"}


def route_muenchen_to(config_dir: Path, fv: ReferenceFachverfahren) -> None:
    """München's submissions go to the reference Fachverfahren over the HTTP adapter."""
    routes = config_dir / "routes.yaml"
    old = "adapter: filedrop\n    settings: {directory: ../out/muenchen-kvr}"
    text = routes.read_text()
    assert old in text
    routes.write_text(
        text.replace(
            old, f"adapter: http\n    settings: {{url: '{fv.url}/cases'}}\n    timeout_seconds: 30"
        )
    )


def submit(url: str, count: int) -> list[str]:
    ids = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(count):
            resp = client.post(
                "/v1/submissions",
                content=fresh("hundesteuer/valid/anmeldung-muenchen.xml"),
                headers=XML,
            )
            assert resp.status_code == 202, resp.text
            ids.append(resp.json()["id"])
    return ids


def count(db: Path, sql: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql).fetchone()[0])


IN_FLIGHT = (
    "SELECT count(*) FROM work_items JOIN deliveries ON deliveries.id = work_items.delivery_id"
    " WHERE work_items.state = 'leased' AND deliveries.state = 'pending'"
)
"""Leased and not yet recorded as delivered: waiting for their lease after a kill."""


def delivered(db: Path) -> int:
    return count(db, "SELECT count(*) FROM deliveries WHERE state='delivered'")


def wait_delivered(db: Path, expected: int, timeout: float) -> float:
    started = time.monotonic()
    while delivered(db) < expected:
        assert time.monotonic() - started < timeout, f"{delivered(db)} of {expected} delivered"
        time.sleep(0.1)
    return time.monotonic() - started


def no_duplicate_cases(fv: ReferenceFachverfahren, expected: int) -> None:
    keys = Counter(case["idempotency_key"] for case in fv.cases())
    assert None not in keys
    assert len(keys) == expected, f"{len(keys)} distinct cases for {expected} deliveries"
    assert max(keys.values()) == 1, "a delivery created two cases"


def test_a_delivery_longer_than_its_lease_is_not_taken_over(
    tmp_path: Path, config_dir: Path
) -> None:
    """Two workers, a 1.5 s lease and a Fachverfahren answering after 4 s: without renewal
    the other worker claims every item after 1.5 s and sends it a second time."""
    count_ = 6
    slow = 4.0
    with reference_fachverfahren(tmp_path / "fv") as fv:
        fv.fail("slow", slow_seconds=slow)
        route_muenchen_to(config_dir, fv)
        data = tmp_path / "data"
        env = gateway_env(
            data,
            config_dir,
            XOEV_GATEWAY_LEASE_SECONDS="1.5",
            XOEV_GATEWAY_POLL_SECONDS="0.1",
        )
        api = GatewayProcess("api", env, tmp_path / "api.log")
        workers: list[GatewayProcess] = []
        try:
            api.wait_ready()
            for n in (1, 2):
                workers.append(GatewayProcess("worker", env, tmp_path / f"worker-{n}.log"))
                workers[-1].wait_ready()
            ids = submit(api.url, count_)
            wait_delivered(data / "gateway.db", count_, timeout=60)
            # A second request for an item would still be sleeping in the Fachverfahren.
            time.sleep(slow + 1)
            with httpx.Client(base_url=api.url, timeout=30, headers=XML) as client:
                views = [client.get(f"/v1/submissions/{i}").json() for i in ids]
            state = fv.state()
            no_duplicate_cases(fv, count_)
        finally:
            for proc in (api, *workers):
                proc.stop()
    assert state["repeats"] == 0, "an item was sent again while its first delivery ran"
    assert [v["deliveries"][0]["attempts"] for v in views] == [1] * count_


def test_a_killed_workers_items_come_back_within_one_lease(
    tmp_path: Path, config_dir: Path
) -> None:
    """The default lease (30 s): the killed worker's in-flight items are delivered by the
    next worker within one lease plus a delivery, not after 300 s; the Fachverfahren's
    idempotency absorbs the requests that reached it before the kill."""
    count_ = 24
    slow = 1.0
    with reference_fachverfahren(tmp_path / "fv") as fv:
        fv.fail("slow", slow_seconds=slow)
        route_muenchen_to(config_dir, fv)
        data = tmp_path / "data"
        db = data / "gateway.db"
        env = gateway_env(
            data,
            config_dir,
            XOEV_GATEWAY_WORKER_CONCURRENCY="8",
            XOEV_GATEWAY_POLL_SECONDS="0.1",
        )
        api = GatewayProcess("api", env, tmp_path / "api.log")
        worker = GatewayProcess("worker", env, tmp_path / "worker-1.log")
        restarted: GatewayProcess | None = None
        try:
            api.wait_ready()
            worker.wait_ready()
            submit(api.url, count_)
            deadline = time.monotonic() + 30
            while delivered(db) == 0 or count(db, IN_FLIGHT) == 0:
                assert time.monotonic() < deadline, "nothing delivered"
                time.sleep(0.05)
            worker.kill()
            killed = time.monotonic()
            leased = count(db, IN_FLIGHT)
            assert leased > 0
            restarted = GatewayProcess("worker", env, tmp_path / "worker-2.log")
            restarted.wait_ready()
            wait_delivered(db, count_, timeout=120)
            took = time.monotonic() - killed
            time.sleep(slow + 1)  # let any repeated request finish at the Fachverfahren
            state = fv.state()
            no_duplicate_cases(fv, count_)
        finally:
            for proc in (api, worker, restarted):
                if proc is not None:
                    proc.stop()
    print(
        f"\n{leased} leased and undelivered at the kill; all {count_} delivered {took:.1f} s after it; "
        f"{state['repeats']} repeated requests absorbed by the Idempotency-Key"
    )
    # One lease (30 s) + the delivery itself + process start; the old lease alone was 300 s.
    assert took < 30 + 2 * slow + 15


def test_a_stalled_worker_lets_go_of_items_another_worker_took(
    tmp_path: Path, config_dir: Path
) -> None:
    """A worker frozen (SIGSTOP, as in a disk-full stall) for two leases: another worker
    takes its items; when it resumes, its heartbeat finds the leases gone and cancels its
    own deliveries instead of recording them."""
    count_ = 4
    slow = 6.0
    with reference_fachverfahren(tmp_path / "fv") as fv:
        fv.fail("slow", slow_seconds=slow)
        route_muenchen_to(config_dir, fv)
        data = tmp_path / "data"
        db = data / "gateway.db"
        env = gateway_env(
            data, config_dir, XOEV_GATEWAY_LEASE_SECONDS="1.5", XOEV_GATEWAY_POLL_SECONDS="0.1"
        )
        api = GatewayProcess("api", env, tmp_path / "api.log")
        stalled = GatewayProcess("worker", env, tmp_path / "worker-1.log")
        other: GatewayProcess | None = None
        try:
            api.wait_ready()
            stalled.wait_ready()
            submit(api.url, count_)
            deadline = time.monotonic() + 20
            while count(db, "SELECT count(*) FROM work_items WHERE state='leased'") < count_:
                assert time.monotonic() < deadline, "the first worker never leased them all"
                time.sleep(0.05)
            time.sleep(0.3)  # its requests are at the Fachverfahren now
            stalled.proc.send_signal(signal.SIGSTOP)
            other = GatewayProcess("worker", env, tmp_path / "worker-2.log")
            other.wait_ready()
            time.sleep(3)  # two leases: the other worker has claimed them
            stalled.proc.send_signal(signal.SIGCONT)
            wait_delivered(db, count_, timeout=60)
            time.sleep(slow + 1)
            state = fv.state()
            no_duplicate_cases(fv, count_)
        finally:
            stalled.proc.send_signal(signal.SIGCONT)
            for proc in (api, stalled, other):
                if proc is not None:
                    proc.stop()
    log = stalled.log.read_text()
    assert log.count("is no longer this worker's (its lease was lost)") == count_, log
    # Those of the stalled worker's requests that reached the Fachverfahren, absorbed.
    assert state["repeats"] <= count_
