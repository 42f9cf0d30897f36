"""Configuration of the FIT-Connect source: one entry per destination (Zustellpunkt).

It lives in the gateway's configuration directory as ``fit-connect.yaml`` (``load``), is
checked when the configuration loads (``config check``, start, reload) and reported with
file and line like the routing files. Secrets are never values in the file: the OAuth client
secret and the callback secret are names of environment variables (read when the source
starts); private keys are JWK files that only the owner may read (mode 0600, checked at
load). Relative key file paths are taken relative to ``fit-connect.yaml``.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from joserfc.jwk import RSAKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.errors import ConfigError
from gateway.routing.yaml_lines import line_of
from gateway.sources.fitconnect import crypto

CONFIG_FILE = "fit-connect.yaml"


class DestinationSettings(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    destination_id: str
    token_url: str
    api_base_url: str
    client_id: str
    client_secret_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    decryption_key_files: tuple[Path, ...] = Field(min_length=1)
    signing_key_file: Path
    callback_secret_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    poll_interval: float = Field(default=30.0, gt=0)
    # A kennung as the routing config knows it (``ags:09162000``, ``ars:…`` or an alias):
    # the municipality this destination belongs to, when the transport addresses it.
    recipient: str | None = Field(default=None, pattern=r"^\S+$")
    production: bool = True

    @field_validator("destination_id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        try:
            uuid.UUID(value)
        except ValueError as exc:
            raise ValueError("destination_id must be a UUID") from exc
        return value

    @field_validator("token_url", "api_base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("decryption_key_files", mode="before")
    @classmethod
    def _paths(cls, value: object) -> object:
        # YAML gives lists of strings; strict mode wants the declared types.
        if isinstance(value, list | tuple):
            return tuple(Path(v) if isinstance(v, str) else v for v in value)
        return value

    @field_validator("signing_key_file", mode="before")
    @classmethod
    def _path(cls, value: object) -> object:
        return Path(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _https_in_production(self) -> DestinationSettings:
        # Tokens and keys travel over these URLs; plain HTTP only to this machine (emulator).
        if self.production:
            for url in (self.token_url, self.api_base_url):
                host = urlsplit(url).hostname or ""
                if url.startswith("http://") and host not in ("127.0.0.1", "localhost", "::1"):
                    raise ValueError(f"{url}: production needs https:// (http only to localhost)")
        return self

    def client_secret(self) -> str:
        return _env(self.client_secret_env, self.destination_id)

    def callback_secret(self) -> str | None:
        if self.callback_secret_env is None:
            return None
        return _env(self.callback_secret_env, self.destination_id)

    def keys(self) -> DestinationKeys:
        """Load and check the private keys (file mode, key use, strength in production)."""
        decryption: list[RSAKey] = []
        for path in self.decryption_key_files:
            key = crypto.rsa_key(crypto.load_jwk_file(path), purpose="unwrapKey")
            crypto.check_key_strength(key, production=self.production, name=str(path))
            decryption.append(key)
        data = crypto.load_jwk_file(self.signing_key_file)
        signing = crypto.rsa_key(data, purpose="sign")
        crypto.check_key_strength(
            signing, production=self.production, name=str(self.signing_key_file)
        )
        kid = data.get("kid")
        if not isinstance(kid, str) or not kid:
            raise ConfigError(f"{self.signing_key_file}: the signing JWK needs a kid")
        return DestinationKeys(crypto.DecryptionKeys(decryption), signing, kid)


class FitConnectSettings(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    destinations: tuple[DestinationSettings, ...] = Field(min_length=1)

    @field_validator("destinations", mode="before")
    @classmethod
    def _tuple(cls, value: object) -> object:
        return tuple(value) if isinstance(value, list) else value

    @field_validator("destinations")
    @classmethod
    def _unique(cls, value: tuple[DestinationSettings, ...]) -> tuple[DestinationSettings, ...]:
        ids = [d.destination_id for d in value]
        if len(set(ids)) != len(ids):
            raise ValueError("destination ids must be unique")
        return value


@dataclass(frozen=True)
class DestinationKeys:
    decryption: crypto.DecryptionKeys
    signing: RSAKey
    signing_kid: str


def _env(name: str, destination_id: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"destination {destination_id}: environment variable {name} is not set")
    return value


def load(directory: Path) -> FitConnectSettings | None:
    """``<directory>/fit-connect.yaml`` validated, with every destination's keys loaded and
    checked; ``None`` when the file is absent (no FIT-Connect source). Raises ``ConfigError``
    naming file, line and key of the first problem."""
    path = directory / CONFIG_FILE
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(
            f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}"
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}:1: the top level must be a mapping with 'destinations'")
    _relative_key_paths(raw, path.parent)
    try:
        settings = FitConnectSettings.model_validate(raw)
    except ValidationError as exc:
        problems = []
        errors = exc.errors()
        for err in errors:
            if err["type"] == "too_short" and len(errors) > 1:
                continue  # pydantic's echo of an invalid entry: "tuple of 0 items"
            loc = tuple(err["loc"])
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{_where(path, text, loc)}: {'.'.join(map(str, loc))}: {msg}")
        raise ConfigError("; ".join(problems)) from None
    for index, destination in enumerate(settings.destinations):
        try:
            destination.keys()
        except ConfigError as exc:
            loc = ("destinations", index)
            raise ConfigError(
                f"{_where(path, text, loc)}: destinations.{index}: {exc.detail}"
            ) from None
    return settings


def fingerprint(settings: FitConnectSettings) -> str:
    """Settings and key file contents: a reload restarts the source only when this changes
    (a key rotated in place keeps its path but not its bytes)."""
    digest = hashlib.sha256(settings.model_dump_json().encode())
    for destination in settings.destinations:
        for path in (*destination.decryption_key_files, destination.signing_key_file):
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _relative_key_paths(raw: dict[str, object], base: Path) -> None:
    destinations = raw.get("destinations")
    if not isinstance(destinations, list):
        return
    for entry in destinations:
        if not isinstance(entry, dict):
            continue
        files = entry.get("decryption_key_files")
        if isinstance(files, list):
            entry["decryption_key_files"] = [_under(base, f) for f in files]
        if "signing_key_file" in entry:
            entry["signing_key_file"] = _under(base, entry["signing_key_file"])


def _under(base: Path, value: object) -> object:
    if isinstance(value, str) and not Path(value).is_absolute():
        return str(base / value)
    return value


def _where(path: Path, text: str, loc: tuple[str | int, ...]) -> str:
    line = line_of(text, loc)
    return f"{path}:{line}" if line else str(path)
