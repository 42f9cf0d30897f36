"""The ``sftp`` adapter against asyncssh's SFTP server, run as a real process."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from adapters.sftp import SftpDropAdapter, SftpSettings
from gateway.testing.adapter_contract import (
    AdapterContract,
    FaultMode,
    TargetCase,
    WorkerHarness,
)
from tests.support.faults import set_fault
from tests.support.mapped import FORMATS, mapped_delivery, previewed
from tests.support.processes import ServerProcess, free_port, serve

PASSWORD = "sftp-test-password"


@pytest.fixture(scope="module")
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    directory = tmp_path_factory.mktemp("sftp")
    port = free_port()
    with serve(
        ["-m", "tests.support.sftp_server", str(directory), str(port)],
        port,
        directory / "server.log",
        env={"SFTP_PASSWORD": PASSWORD},
    ) as server:
        yield server, directory


class SftpTarget:
    def __init__(self, port: int, directory: Path, inbox: str) -> None:
        self.port = port
        self.directory = directory
        self.inbox = directory / "root" / inbox
        self._settings = {
            "host": "127.0.0.1",
            "port": port,
            "username": "gateway",
            "password_env": "SFTP_TEST_PASSWORD",
            "known_hosts": str(directory / "known_hosts"),
            "directory": f"/{inbox}",
        }

    def settings(self) -> Mapping[str, Any]:
        return self._settings

    async def count_cases(self) -> int:
        # The importer's view: one completed delivery = one <id>.json (no temp files left).
        assert not list(self.inbox.rglob(".*.tmp")), "a temp file was left behind"
        return len(list(self.inbox.glob("*.json")))

    def secrets(self) -> Mapping[str, str]:
        return {"SFTP_TEST_PASSWORD": PASSWORD}

    async def cases(self) -> list[TargetCase]:
        raise NotImplementedError  # test_files_arrive_complete_with_attachments looks

    async def fail(self, mode: FaultMode, count: int) -> None:
        if mode == "throttle":
            raise NotImplementedError  # SFTP has no retry hint
        set_fault(self.directory / "fault", mode, count)


@pytest.fixture
def target(
    sftp_server: tuple[ServerProcess, Path],
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> SftpTarget:
    server, directory = sftp_server
    monkeypatch.setenv("SFTP_TEST_PASSWORD", PASSWORD)
    (directory / "fault").unlink(missing_ok=True)
    return SftpTarget(server.port, directory, f"inbox-{request.node.name[:40]}")


class TestSftpAdapterContract(AdapterContract):
    adapter = "sftp"
    mapping = None  # the files are the XML as received and its metadata

    def check_receipt(self, receipt: Any) -> None:
        assert receipt.reference.endswith(".xml")


async def test_files_arrive_complete_with_attachments(tmp_path: Path, target: SftpTarget) -> None:
    content = b"%PDF-1.4 " + bytes(range(256)) * 100
    # Same names, and names with directories: each is its own file, none leaves the folder.
    attachments = [
        ("../../Plan.pdf", "application/pdf", content),
        ("Plan.pdf", "application/pdf", b"second"),
        ("dir2/Plan.pdf", "application/pdf", b"third"),
    ]
    async with WorkerHarness(tmp_path / "gw", "sftp", target.settings()) as h:
        outcome = await h.settled(await h.submit(attachments=attachments))
    assert outcome.state == "delivered", outcome.problem
    stem = target.inbox / outcome.delivery_id
    assert stem.with_suffix(".xml").read_bytes().startswith(b"<?xml")
    folder = target.inbox / f"{outcome.delivery_id}.attachments"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {
        "1-Plan.pdf": content,
        "2-Plan.pdf": b"second",
        "3-dir2_Plan.pdf": b"third",
    }


async def test_wrong_password_is_permanent(
    tmp_path: Path, target: SftpTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SFTP_TEST_PASSWORD", "wrong")
    async with WorkerHarness(tmp_path / "gw", "sftp", target.settings()) as h:
        outcome = await h.settled(await h.submit())
    assert outcome.state == "dead" and outcome.attempts == 1
    problem = outcome.problem or ""
    assert "SSH refused" in problem and "wrong" not in problem


async def test_unknown_host_key_is_permanent(tmp_path: Path, target: SftpTarget) -> None:
    other = tmp_path / "known_hosts"
    stranger = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    other.write_text(f"[127.0.0.1]:{target.port} {stranger}")
    settings = {**target.settings(), "known_hosts": str(other)}
    async with WorkerHarness(tmp_path / "gw", "sftp", settings) as h:
        outcome = await h.settled(await h.submit())
    assert outcome.state == "dead" and outcome.attempts == 1


async def test_unreachable_server_is_transient(tmp_path: Path, target: SftpTarget) -> None:
    settings = {**target.settings(), "port": free_port()}
    async with WorkerHarness(tmp_path / "gw", "sftp", settings, max_attempts=2) as h:
        outcome = await h.settled(await h.submit())
    assert outcome.state == "dead" and outcome.attempts == 2
    assert "connection failed" in (outcome.problem or "")


@pytest.mark.parametrize("fmt", FORMATS)
async def test_mapped_document_arrives_as_previewed(target: SftpTarget, fmt: str) -> None:
    settings = {**target.settings(), "mapped_name": "HST_{message_uuid}.{ext}"}
    adapter = SftpDropAdapter(SftpSettings.model_validate(settings))
    delivery = mapped_delivery(fmt)
    await adapter.deliver(delivery)
    ext = {"json": "json", "xml": "xml", "keyvalue": "txt"}[fmt]
    name = f"HST_{delivery.message_uuid}.{ext}"
    assert (target.inbox / name).read_bytes() == previewed(fmt)[1].body
    meta = json.loads((target.inbox / f"{delivery.delivery_id}.json").read_bytes())
    assert meta["payload_file"] == name and meta["payload_format"] == fmt
