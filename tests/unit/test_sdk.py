"""The adapter authors' public surface: changes to it must be deliberate."""

from __future__ import annotations

import pytest

import gateway.sdk
from gateway.adapter_registry import available
from gateway.sdk import Delivery, PermanentDeliveryError, secret_from_env


def test_public_surface_is_pinned() -> None:
    assert gateway.sdk.__all__ == [
        "Adapter",
        "AdapterSettings",
        "Attachment",
        "Delivery",
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
