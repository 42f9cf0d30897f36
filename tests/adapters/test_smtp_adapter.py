"""The ``smtp`` adapter against aiosmtpd, run as a real process (STARTTLS and TLS, AUTH)."""

from __future__ import annotations

import email
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from adapters.smtp import SmtpAdapter, SmtpSettings
from gateway.testing.adapter_contract import (
    AdapterContract,
    FaultMode,
    TargetCase,
    WorkerHarness,
)
from tests.support.certs import Pki, make_pki
from tests.support.faults import set_fault
from tests.support.mapped import FORMATS, mapped_delivery, previewed
from tests.support.processes import ServerProcess, free_port, serve

PASSWORD = "smtp-test-password"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def attachment_content(part: EmailMessage) -> bytes:
    """An attachment part's content, transfer-decoded (a leaf part: bytes, never a list)."""
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes), f"attachment {part.get_filename()!r} is not a leaf part"
    return payload


@contextmanager
def smtp_server(directory: Path, pki: Pki, mode: str) -> Iterator[tuple[ServerProcess, Path]]:
    port = free_port()
    args = ["-m", "tests.support.smtp_server", str(directory), str(port)]
    args += [f"--{mode}", str(pki.server_cert), str(pki.server_key)]
    with serve(args, port, directory / "server.log", env={"SMTP_PASSWORD": PASSWORD}) as server:
        yield server, directory


@pytest.fixture(scope="module")
def starttls_server(
    tmp_path_factory: pytest.TempPathFactory, pki: Pki
) -> Iterator[tuple[ServerProcess, Path]]:
    with smtp_server(tmp_path_factory.mktemp("smtp"), pki, "starttls") as started:
        yield started


class MailboxTarget:
    def __init__(self, port: int, directory: Path, pki: Pki, security: str) -> None:
        self.directory = directory
        self._settings = {
            "host": "127.0.0.1",
            "port": port,
            "security": security,
            "username": "gateway",
            "password_env": "SMTP_TEST_PASSWORD",
            "ca_file": str(pki.ca),
            "from_address": "xoev-gateway@stuttgart.example",
            "to": ["hundesteuer@stuttgart.example"],
        }

    def settings(self) -> Mapping[str, Any]:
        return self._settings

    def mails(self) -> list[EmailMessage]:
        return [
            email.message_from_bytes(p.read_bytes(), policy=default)
            for p in sorted((self.directory / "mailbox").glob("*.eml"))
        ]

    def secrets(self) -> Mapping[str, str]:
        return {"SMTP_TEST_PASSWORD": PASSWORD}

    async def count_cases(self) -> int:
        return len(self.mails())

    async def cases(self) -> list[TargetCase]:
        return [
            TargetCase(
                content=mail.as_string(),
                attachments={
                    str(part.get_filename()): attachment_content(part)
                    for part in mail.iter_attachments()
                },
            )
            for mail in self.mails()
        ]

    async def fail(self, mode: FaultMode, count: int) -> None:
        if mode == "throttle":
            raise NotImplementedError  # SMTP has no retry hint
        set_fault(self.directory / "fault", mode, count)


@pytest.fixture
def target(
    starttls_server: tuple[ServerProcess, Path], pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> MailboxTarget:
    server, directory = starttls_server
    monkeypatch.setenv("SMTP_TEST_PASSWORD", PASSWORD)
    (directory / "fault").unlink(missing_ok=True)
    for old in (directory / "mailbox").glob("*.eml"):
        old.unlink()
    return MailboxTarget(server.port, directory, pki, "starttls")


class TestSmtpAdapterContract(AdapterContract):
    adapter = "smtp"
    mapping = None  # the mail carries the XML as received

    def check_receipt(self, receipt: Any) -> None:
        assert receipt.reference.endswith("@stuttgart.example>")


async def test_mail_has_summary_xml_and_attachments(tmp_path: Path, target: MailboxTarget) -> None:
    async with WorkerHarness(tmp_path / "gw", "smtp", target.settings()) as h:
        outcome = await h.settled(
            await h.submit(attachments=[("Plan.pdf", "application/pdf", b"%PDF-1.4 plan")])
        )
    assert outcome.state == "delivered", outcome.problem
    (mail,) = target.mails()
    assert mail["Message-ID"] == f"<{outcome.delivery_id}@stuttgart.example>"
    assert (
        mail["Subject"] == f"Antrag hundesteuer.anmeldung.0101 für 08111000 ({outcome.delivery_id})"
    )
    body = mail.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "familienname: Weidmann" in text and "Anlagen: Plan.pdf" in text
    parts = {p.get_filename(): p for p in mail.iter_attachments()}
    assert parts["hundesteuer.anmeldung.0101.xml"].get_content().startswith(b"<?xml")
    assert parts["1-Plan.pdf"].get_content() == b"%PDF-1.4 plan"


async def test_wrong_password_is_permanent(
    tmp_path: Path, target: MailboxTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTP_TEST_PASSWORD", "wrong")
    async with WorkerHarness(tmp_path / "gw", "smtp", target.settings()) as h:
        outcome = await h.settled(await h.submit())
    assert outcome.state == "dead" and outcome.attempts == 1
    assert "SMTP 535" in (outcome.problem or "")


async def test_implicit_tls(tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_TEST_PASSWORD", PASSWORD)
    (tmp_path / "smtps").mkdir()
    with smtp_server(tmp_path / "smtps", pki, "tls") as (server, directory):
        target = MailboxTarget(server.port, directory, pki, "tls")
        async with WorkerHarness(tmp_path / "gw", "smtp", target.settings()) as h:
            outcome = await h.settled(await h.submit())
        assert outcome.state == "delivered", outcome.problem
        assert await target.count_cases() == 1


def test_subject_template_fields_are_checked_at_config_load() -> None:
    from pydantic import ValidationError

    from adapters.smtp import SmtpSettings

    with pytest.raises(ValidationError, match="unknown field 'name'"):
        SmtpSettings.model_validate(
            {"host": "h", "from_address": "a@b", "to": ["c@d"], "subject": "{name}"}
        )


@pytest.mark.parametrize("fmt", FORMATS)
async def test_mapped_document_is_attached_as_previewed(target: MailboxTarget, fmt: str) -> None:
    adapter = SmtpAdapter(SmtpSettings.model_validate(target.settings()))
    await adapter.deliver(mapped_delivery(fmt))
    (mail,) = target.mails()
    payload = previewed(fmt)[1]
    ext = {"json": "json", "xml": "xml", "keyvalue": "txt"}[fmt]
    (part,) = [p for p in mail.iter_attachments() if p.get_filename() == f"mapped.{ext}"]
    assert part.get_content_type() == payload.media_type.partition(";")[0]
    assert part.get_payload(decode=True) == payload.body
