"""Configuration of the FIT-Connect source: strict, secrets by reference, keys checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import RSAKey
from pydantic import ValidationError

from gateway.errors import ConfigError
from gateway.sources.fitconnect.settings import DestinationSettings, FitConnectSettings
from tests.fitconnect.conftest import KeyRing, jwk

DESTINATION = "3f0e3c4e-54a3-4b6b-9d7e-6f2f0b9b1a01"


def _settings(enc: Path, sig: Path, **extra: Any) -> DestinationSettings:
    values: dict[str, Any] = {
        "destination_id": DESTINATION,
        "token_url": "https://auth-testing.fit-connect.fitko.dev/token",
        "api_base_url": "https://submission-api-testing.fit-connect.fitko.dev/",
        "client_id": "c",
        "client_secret_env": "FIT_SECRET",
        "decryption_key_files": [str(enc)],
        "signing_key_file": str(sig),
    }
    values.update(extra)
    return DestinationSettings.model_validate(values)


def _write(path: Path, data: dict[str, Any], mode: int = 0o600) -> Path:
    path.write_text(json.dumps(data))
    path.chmod(mode)
    return path


def test_keys_load_and_urls_are_normalised(tmp_path: Path, test_keys: KeyRing) -> None:
    enc, sig = test_keys.write(tmp_path)
    settings = _settings(enc, sig)
    assert settings.production is True
    assert settings.api_base_url == "https://submission-api-testing.fit-connect.fitko.dev"
    keys = settings.keys()
    assert keys.signing_kid == "sig-key-1"
    assert len(keys.decryption.keys) == 1


def test_unknown_fields_and_secret_values_are_refused(tmp_path: Path, test_keys: KeyRing) -> None:
    enc, sig = test_keys.write(tmp_path)
    with pytest.raises(ValidationError, match="extra"):
        _settings(enc, sig, client_secret="plain-text-secret")
    with pytest.raises(ValidationError):
        _settings(enc, sig, destination_id="not-a-uuid")
    with pytest.raises(ValidationError):
        _settings(enc, sig, recipient="ags 0916")
    assert _settings(enc, sig, recipient="ags:09162000").recipient == "ags:09162000"
    with pytest.raises(ValidationError, match="unique"):
        s = _settings(enc, sig)
        FitConnectSettings(destinations=(s, s))


def test_secrets_come_from_the_environment(
    tmp_path: Path, test_keys: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    enc, sig = test_keys.write(tmp_path)
    settings = _settings(enc, sig, callback_secret_env="FIT_CALLBACK")
    monkeypatch.delenv("FIT_SECRET", raising=False)
    with pytest.raises(ConfigError, match="FIT_SECRET is not set"):
        settings.client_secret()
    monkeypatch.setenv("FIT_SECRET", "s3cret")
    monkeypatch.setenv("FIT_CALLBACK", "cb")
    assert (settings.client_secret(), settings.callback_secret()) == ("s3cret", "cb")
    assert "s3cret" not in repr(settings)


def test_key_files_readable_by_others_are_refused(tmp_path: Path, test_keys: KeyRing) -> None:
    enc, sig = test_keys.write(tmp_path)
    enc.chmod(0o640)
    with pytest.raises(ConfigError, match="0600"):
        _settings(enc, sig).keys()


def test_2048_bit_keys_are_refused_in_production_only(tmp_path: Path, test_keys: KeyRing) -> None:
    small = RSAKey.generate_key(2048, private=True)
    enc = _write(tmp_path / "enc.json", jwk(small, "small-enc", "unwrapKey", "RSA-OAEP-256"))
    _, sig = test_keys.write(tmp_path)
    with pytest.raises(ConfigError, match="2048 bit refused in production"):
        _settings(enc, sig).keys()
    assert _settings(enc, sig, production=False).keys().decryption.keys


def test_rotation_several_decryption_keys(tmp_path: Path, test_keys: KeyRing) -> None:
    enc, sig = test_keys.write(tmp_path)
    old = _write(
        tmp_path / "old.json", jwk(test_keys.service, "old-enc-key", "unwrapKey", "RSA-OAEP-256")
    )
    keys = _settings(enc, sig, decryption_key_files=[str(enc), str(old)]).keys()
    assert [k.kid for k in keys.decryption.keys] == ["enc-key-1", "old-enc-key"]


def test_signing_key_must_be_a_private_ps512_key(tmp_path: Path, test_keys: KeyRing) -> None:
    enc, _ = test_keys.write(tmp_path)
    wrong = _write(
        tmp_path / "sig.json", jwk(test_keys.signing, "sig", "unwrapKey", "RSA-OAEP-256")
    )
    with pytest.raises(ConfigError):
        _settings(enc, wrong).keys()


def test_production_needs_https_except_to_localhost(tmp_path: Path, test_keys: KeyRing) -> None:
    enc, sig = test_keys.write(tmp_path)
    with pytest.raises(ValidationError, match="https"):
        _settings(enc, sig, api_base_url="http://fit-connect.example")
    _settings(enc, sig, api_base_url="http://fit-connect.example", production=False)
    _settings(enc, sig, api_base_url="http://127.0.0.1:8090")
