"""The database (all raw XML), its WAL files, the blobs and the data directory are
private to the gateway's user, whatever the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest

from tests.conftest import sample
from tests.support.deployments import KOELN, SENDER, embedded, pdf, settled, wait_for, write_config
from tests.support.messages import with_new_uuid

pytestmark = pytest.mark.slow


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_data_files_and_directories_are_private(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", "retention:\n  default: {payload_days: 1000}\n")
    previous = os.umask(0o022)  # the usual umask: files 0644 unless created otherwise
    try:
        async with embedded(tmp_path, config) as gw:
            with httpx.Client(base_url=gw.url, timeout=30) as client:
                resp = client.post(
                    "/v1/submissions",
                    files={
                        "message": ("m.xml", with_new_uuid(sample(KOELN))[1], "application/xml"),
                        "anlage": ("antrag.pdf", pdf(1024), "application/pdf"),
                    },
                    headers=SENDER,
                )
                assert resp.status_code == 202, resp.text
                wait_for(client, resp.headers["location"], settled)
            data = gw.data_dir
            files = [data / "gateway.db", data / "gateway.db-wal", data / "gateway.db-shm"]
            files += gw.blob_files
            dirs = [data, data / "blobs", *{p.parent for p in gw.blob_files}]
            assert {str(p): oct(mode(p)) for p in files} == {str(p): "0o600" for p in files}
            assert {str(p): oct(mode(p)) for p in dirs} == {str(p): "0o700" for p in dirs}
    finally:
        os.umask(previous)


async def test_an_existing_world_readable_database_is_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "gateway.db").touch(mode=0o644)
    os.chmod(data, 0o755)
    os.chmod(data / "gateway.db", 0o644)
    config = write_config(tmp_path / "config", "retention: {}\n")
    async with embedded(tmp_path, config):
        assert mode(data) == 0o700
        assert mode(data / "gateway.db") == 0o600
