"""Storage faults under a running ``serve``: the SQLite file deleted or replaced, the data
directory full, and the free-space floor of ``/readyz``; over real HTTP."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DEMO_SENDER_TOKEN
from tests.support.gateway_process import GatewayProcess, gateway_env
from tests.support.messages import fresh

AUTH = {"Authorization": f"Bearer {DEMO_SENDER_TOKEN}"}
XML = {**AUTH, "Content-Type": "application/xml"}
PROBLEM = "application/problem+json"
SAMPLE = "hundesteuer/valid/anmeldung-stuttgart.xml"


class Sender:
    """Submits continuously from a few threads and records every answer in order."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.answers: list[tuple[float, float, int, dict[str, object]]] = []
        """(sent, answered, status, body) in monotonic time."""
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def __enter__(self) -> Sender:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                resp = client.post("/v1/submissions", content=fresh(SAMPLE), headers=XML)
                assert resp.status_code in (202, 503), resp.text
                if resp.status_code == 503:
                    assert resp.headers["content-type"] == PROBLEM
                with self._lock:
                    self.answers.append((sent, time.monotonic(), resp.status_code, resp.json()))


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_lost_sqlite_file_refuses_submissions_and_loses_no_202(
    tmp_path: Path, config_dir: Path, how: str
) -> None:
    data = tmp_path / "data"
    db = data / "gateway.db"
    env = gateway_env(data, config_dir, XOEV_GATEWAY_POLL_SECONDS="0.2")
    serve = GatewayProcess("serve", env, tmp_path / "serve.log")
    try:
        serve.wait_ready()
        with Sender(serve.url) as sender:
            time.sleep(1.5)
            if how == "deleted":
                db.unlink()
            else:  # e.g. a restore over the running gateway
                other = tmp_path / "other.db"
                sqlite3.connect(other).close()
                other.replace(db)
            lost_at = time.monotonic()
            time.sleep(1.5)
        ready = httpx.get(f"{serve.url}/readyz", timeout=10)
    finally:
        serve.stop()
    log = serve.log.read_text()

    answers = sorted(sender.answers, key=lambda a: a[1])
    accepted = [a for a in answers if a[2] == 202]
    refused = [a for a in answers if a[2] == 503]
    assert accepted and refused, (len(accepted), len(refused))
    # Refused for that reason from the first refusal on: nothing answered 202 after it.
    first_refusal = refused[0][1]
    assert all(a[3]["type"] == "https://xoev-gateway.de/problems/store-file-lost" for a in refused)
    assert not [a for a in accepted if a[0] >= first_refusal]
    assert first_refusal - lost_at < 1.0, "noticed late"
    assert ready.status_code == 503 and "SQLite database" in ready.json()["detail"]
    what = "deleted" if how == "deleted" else "replaced by another file"
    assert f"{db} was {what} while the gateway was running" in log

    # Nothing that got a 202 is lost: the copy saved from the open file holds every one,
    # and a gateway started on it answers for each of them.
    (saved,) = data.glob("gateway.db.saved-*")
    assert str(saved) in log
    with sqlite3.connect(saved) as conn:
        stored = {r[0] for r in conn.execute("SELECT id FROM submissions")}
    ids = [str(a[3]["id"]) for a in accepted]
    assert set(ids) <= stored
    db.unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    saved.replace(db)
    restarted = GatewayProcess("serve", env, tmp_path / "serve-2.log")
    try:
        restarted.wait_ready()
        with httpx.Client(base_url=restarted.url, timeout=30, headers=AUTH) as client:
            assert client.get("/readyz").status_code == 200
            statuses = {client.get(f"/v1/submissions/{i}").status_code for i in ids}
    finally:
        restarted.stop()
    assert statuses == {200}
    print(f"\n{how}: {len(accepted)} answered 202 (all kept), {len(refused)} answered 503")


@contextmanager
def small_file_system(directory: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``directory`` (needs root, as here and in CI)."""
    directory.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for a full disk: {mounted.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` up to the last byte."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    return filler


def with_attachment(client: httpx.Client, size: int) -> httpx.Response:
    return client.post(
        "/v1/submissions",
        files={
            "message": ("message.xml", fresh(SAMPLE), "application/xml"),
            "scan": ("scan.pdf", os.urandom(size), "application/pdf"),
        },
        headers=AUTH,
    )


def test_a_full_data_directory_answers_507_and_leaves_nothing_half_written(
    tmp_path: Path, config_dir: Path
) -> None:
    with small_file_system(tmp_path / "data", "8m") as data:
        env = gateway_env(
            data,
            config_dir,
            XOEV_GATEWAY_MIN_FREE_BYTES=str(2 * 1024 * 1024),
            XOEV_GATEWAY_MIN_FREE_PERCENT="0",
        )
        serve = GatewayProcess("serve", env, tmp_path / "serve.log")
        try:
            serve.wait_ready()
            with httpx.Client(base_url=serve.url, timeout=30) as client:
                assert client.get("/readyz").status_code == 200
                assert with_attachment(client, 100_000).status_code == 202
                filler = fill(data)
                ready = client.get("/readyz")
                answers = [with_attachment(client, size) for size in (3_000, 300_000)]
                xml_only = [
                    client.post("/v1/submissions", content=fresh(SAMPLE), headers=XML)
                    for _ in range(30)
                ]
                leftovers = [p.name for p in (data / "blobs").glob(".incoming-*")]
                filler.unlink()
                ready_again = client.get("/readyz")
                after = with_attachment(client, 300_000)
        finally:
            serve.stop()
        log = serve.log.read_text()

    assert ready.status_code == 503 and "below the floor" in ready.json()["detail"], ready.text
    for resp in answers:
        assert resp.status_code == 507, resp.text
        assert resp.headers["content-type"] == PROBLEM
        assert resp.json()["type"] == "https://xoev-gateway.de/problems/insufficient-storage"
    # Without attachments the accept may still fit into the database's existing pages;
    # either way it is stored or refused as a problem, never a 500.
    for resp in xml_only:
        assert resp.status_code in (202, 507), resp.text
        assert resp.headers["content-type"] == (
            PROBLEM if resp.status_code == 507 else "application/json"
        )
    statuses = [resp.status_code for resp in xml_only]
    print(
        f"\non a full disk: attachments {[r.status_code for r in answers]}, "
        f"30 XML-only: {statuses.count(202)} × 202, {statuses.count(507)} × 507"
    )
    assert leftovers == []
    assert ready_again.status_code == 200 and after.status_code == 202
    assert "Traceback" not in log


def test_readyz_reports_not_ready_below_the_free_space_floor(
    tmp_path: Path, config_dir: Path
) -> None:
    env = gateway_env(tmp_path / "data", config_dir, XOEV_GATEWAY_MIN_FREE_BYTES=str(2**62))
    serve = GatewayProcess("serve", env, tmp_path / "serve.log")
    try:
        serve.wait_ready()
        ready = httpx.get(f"{serve.url}/readyz", timeout=10)
    finally:
        serve.stop()
    assert ready.status_code == 503
    assert ready.headers["content-type"] == PROBLEM
    assert "XOEV_GATEWAY_MIN_FREE_BYTES" in ready.json()["detail"]


def test_the_default_floor_leaves_this_machine_ready(tmp_path: Path, config_dir: Path) -> None:
    """The defaults (1 GiB and 5 %) hold on a development machine or CI runner."""
    usage = shutil.disk_usage(tmp_path)
    if usage.free < 1024**3 or usage.free < usage.total * 0.05:
        pytest.skip(f"this machine has only {usage.free} bytes free")
    env = gateway_env(tmp_path / "data", config_dir)
    env.pop("XOEV_GATEWAY_MIN_FREE_BYTES", None)
    env.pop("XOEV_GATEWAY_MIN_FREE_PERCENT", None)
    serve = GatewayProcess("serve", env, tmp_path / "serve.log")
    try:
        serve.wait_ready()
        assert httpx.get(f"{serve.url}/readyz", timeout=10).status_code == 200
    finally:
        serve.stop()


async def test_a_full_sqlite_database_raises_insufficient_storage(tmp_path: Path) -> None:
    """SQLite's own SQLITE_FULL, provoked with ``max_page_count`` (no full disk needed)."""
    from sqlalchemy import text

    from gateway.errors import InsufficientStorage
    from gateway.store.database import Database

    db = Database.open(f"sqlite:///{tmp_path / 'full.db'}")
    try:
        await db.write(lambda conn: conn.execute(text("CREATE TABLE t (x BLOB)")))

        def overfill(conn: Any) -> None:
            conn.exec_driver_sql("PRAGMA max_page_count = 8")
            for _ in range(100):
                conn.execute(text("INSERT INTO t VALUES (zeroblob(4096))"))

        with pytest.raises(InsufficientStorage):
            await db.write(overfill)
    finally:
        await db.close()


def test_postgresql_disk_full_is_insufficient_storage() -> None:
    """PostgreSQL's disk_full (SQLSTATE 53100) cannot be provoked here without filling the
    server's disk; its classification is checked on the driver's own exception."""
    import asyncpg
    from sqlalchemy.exc import DBAPIError

    from gateway.errors import InsufficientStorage
    from gateway.store.database import disk_full

    full = DBAPIError("INSERT", None, asyncpg.exceptions.DiskFullError("no space"))
    other = DBAPIError("INSERT", None, asyncpg.exceptions.UniqueViolationError())
    assert isinstance(disk_full(full), InsufficientStorage)
    assert disk_full(other) is None
