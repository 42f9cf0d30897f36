"""Attachments of rejected uploads do not stay on disk, and the sweep finds what does."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import sample
from tests.support.deployments import KOELN, SENDER, embedded, pdf, settled, wait_for, write_config
from tests.support.messages import with_new_uuid

pytestmark = pytest.mark.slow

KEEP = "retention:\n  default: {payload_days: 1000}\n"


def upload(client: httpx.Client, xml: bytes, attachment: bytes) -> httpx.Response:
    return client.post(
        "/v1/submissions",
        files={
            "message": ("message.xml", xml, "application/xml"),
            "anlage": ("antrag.pdf", attachment, "application/pdf"),
        },
        headers=SENDER,
    )


async def test_rejected_uploads_leave_no_blobs_and_the_check_removes_only_old_orphans(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path / "config", KEEP)
    async with embedded(tmp_path, config, XOEV_GATEWAY_BLOB_GRACE_SECONDS="60") as gw:
        with httpx.Client(base_url=gw.url, timeout=30) as client:
            invalid = sample("hundesteuer/invalid/missing-required-element.xml")
            for _ in range(3):
                resp = upload(client, invalid, pdf())
                assert resp.status_code == 422, resp.text
            assert gw.blob_files == []

            # Accepted, then the same UUID with other content (409): the first one's
            # attachment stays, the conflicting upload's does not.
            uuid, xml = with_new_uuid(sample(KOELN))
            kept = pdf(1024)
            accepted = upload(client, xml, kept)
            assert accepted.status_code == 202, accepted.text
            conflict = upload(client, xml, pdf(1024))
            assert conflict.status_code == 409, conflict.text
            wait_for(client, accepted.headers["location"], settled)
            (blob,) = gw.blob_files
            assert blob.read_bytes() == kept

        assert gw.cli("blobs", "check").returncode == 0

        # Orphans the prompt removal could not take (a crash, an upload in flight then):
        # old ones are found and removed, a young one is left alone.
        old = gw.data_dir / "blobs" / "ab" / ("ab" + "0" * 62)
        young = gw.data_dir / "blobs" / "cd" / ("cd" + "0" * 62)
        abandoned = gw.data_dir / "blobs" / ".incoming-crashed"
        for path in (old, young, abandoned):
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(b"orphan")
        an_hour_ago = time.time() - 3600
        os.utime(old, (an_hour_ago, an_hour_ago))
        os.utime(abandoned, (an_hour_ago, an_hour_ago))

        check = gw.cli("blobs", "check")
        assert check.returncode == 1
        assert sorted(check.stdout.splitlines()) == [
            "orphan\t.incoming-crashed\t6",
            f"orphan\t{old.name}\t6",
        ]
        removed = gw.cli("blobs", "check", "--remove")
        assert removed.returncode == 0, removed.stderr
        assert not old.exists() and not abandoned.exists()
        assert young.exists() and blob.exists()
