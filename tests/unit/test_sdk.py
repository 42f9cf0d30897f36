"""The adapter authors' public surface: changes to it must be deliberate."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

import gateway.sdk
from gateway.adapter_registry import available
from gateway.sdk import Attachment, Delivery, PermanentDeliveryError, secret_from_env


def test_public_surface_is_pinned() -> None:
    assert gateway.sdk.__all__ == [
        "Adapter",
        "AdapterSettings",
        "Attachment",
        "AttachmentJson",
        "Delivery",
        "MappedPayload",
        "PayloadFormat",
        "PermanentDeliveryError",
        "Receipt",
        "SecretEnv",
        "TransientDeliveryError",
        "attachment_file_name",
        "secret_from_env",
    ]


def test_built_in_adapters_are_registered_by_entry_point() -> None:
    assert {"filedrop", "http", "sftp", "smtp", "soap"} <= set(available())


def test_secret_from_env_names_the_variable_not_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FV_SECRET", "hunter2")
    assert secret_from_env("FV_SECRET") == "hunter2"
    monkeypatch.delenv("FV_SECRET")
    with pytest.raises(PermanentDeliveryError, match="FV_SECRET is not set"):
        secret_from_env("FV_SECRET")


def test_document_is_the_payload_or_an_envelope() -> None:
    base = dict(
        delivery_id="d",
        submission_id="s",
        message_uuid="u",
        message_type="t",
        municipality="08111000",
        sender="p",
        destination="x",
        attempt=1,
        xml=b"<a/>",
    )
    assert Delivery(**base, payload={"name": "Bruno"}).document() == {"name": "Bruno"}  # type: ignore[arg-type]
    envelope = Delivery(**base).document()  # type: ignore[arg-type]
    assert envelope["xml"] == "<a/>" and envelope["delivery_id"] == "d"


def test_mapped_or_envelope_are_the_two_explicit_cases() -> None:
    base = dict(
        delivery_id="d",
        submission_id="s",
        message_uuid="u",
        message_type="t",
        municipality="08111000",
        sender="p",
        destination="x",
        attempt=1,
        xml=b"<a/>",
    )
    unmapped = Delivery(**base)  # type: ignore[arg-type]
    assert unmapped.mapped is None
    assert unmapped.envelope()["xml"] == "<a/>"
    mapped = Delivery(
        **base,  # type: ignore[arg-type]
        payload={"name": "Bruno"},
        payload_format="keyvalue",
        payload_body=b"name=Bruno\n",
    )
    assert mapped.mapped is not None
    assert (mapped.mapped.format, mapped.mapped.body) == ("keyvalue", b"name=Bruno\n")
    assert mapped.mapped.media_type.startswith("text/plain")
    assert mapped.envelope()["xml"] == "<a/>"  # still there when an adapter wants both


async def test_attachment_streams_and_encodes_without_blocking(tmp_path: Path) -> None:
    content = bytes(range(256)) * 2000  # several chunks, not a multiple of 3 in total
    path = tmp_path / "blob"
    path.write_bytes(content)
    attachment = Attachment(
        "a.pdf", "application/pdf", hashlib.sha256(content).hexdigest(), len(content), path
    )
    chunks = [chunk async for chunk in attachment.iter_bytes()]
    assert len(chunks) > 1 and b"".join(chunks) == content
    assert await attachment.read_bytes() == content
    as_json = await attachment.to_json()
    assert base64.b64decode(as_json["content_base64"]) == content
    assert as_json["name"] == "a.pdf" and as_json["size"] == len(content)
