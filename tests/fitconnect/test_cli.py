"""``fit-connect-emulator send`` against a running emulator, then the source picks it up."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.testing.fitconnect.cli import emulator_cli
from tests.fitconnect.conftest import SENDER, XML, Harness


async def test_send_command_submits_and_the_source_accepts(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = tmp_path / "antrag.xml"
    message.write_bytes(XML)
    plan = tmp_path / "plan.pdf"
    plan.write_bytes(b"%PDF-1.7 plan")
    monkeypatch.setenv("FIT_CONNECT_SENDER_SECRET", SENDER[1])
    # the command runs its own event loop: in a thread, beside the test's
    result = await asyncio.to_thread(
        CliRunner().invoke,
        emulator_cli,
        [
            "send",
            str(message),
            "--attachment",
            str(plan),
            "--api",
            harness.server.url,
            "--destination-id",
            harness.settings.destination_id,
            "--client-id",
            SENDER[0],
            "--deflate",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "submitted" in result.output

    assert await harness.worker.round() is True
    [incoming] = harness.sink.stored.values()
    assert [(a.name, a.media_type, a.read()) for a in incoming.attachments] == [
        ("plan.pdf", "application/pdf", b"%PDF-1.7 plan")
    ]


def test_send_without_the_secret_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIT_CONNECT_SENDER_SECRET", raising=False)
    message = tmp_path / "m.xml"
    message.write_bytes(b"<x/>")
    result = CliRunner().invoke(emulator_cli, ["send", str(message)])
    assert result.exit_code == 6
    assert "FIT_CONNECT_SENDER_SECRET" in result.output
