from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc.jwk import RSAKey

from gateway.errors import GatewayError, Unavailable
from gateway.sources.base import AcceptResult, IncomingSubmission
from gateway.sources.fitconnect.settings import DestinationSettings, FitConnectSettings
from gateway.sources.fitconnect.source import DestinationWorker, FitConnectSource
from gateway.testing.fitconnect import (
    DestinationFiles,
    Emulator,
    EmulatorServer,
    OutgoingAttachment,
    Sent,
    Tamper,
    register,
    send,
    start_in_thread,
)

REPO = Path(__file__).resolve().parents[2]


def _find_shared() -> Path:
    # CI: a fresh clone with shared/ beside it. Developers: a git worktree further down.
    for ancestor in REPO.parents:
        candidate = ancestor / "shared" / "fit-connect"
        if candidate.is_dir():
            return candidate
    return REPO.parent / "shared" / "fit-connect"


SHARED_FIT = _find_shared()
VECTORS = SHARED_FIT / "test-vectors" / "jose-utils"


@pytest.fixture(scope="session")
def vectors() -> Path:
    if not VECTORS.is_dir():
        pytest.skip(
            f"FIT-Connect test vectors not present at {VECTORS} (shared/ not beside the repo)"
        )
    return VECTORS


@pytest.fixture(scope="session")
def openapi_path() -> Path:
    path = SHARED_FIT / "openapi" / "submission-api.v1.1.3.yaml"
    if not path.is_file():
        pytest.skip(f"Submission API OpenAPI document not present at {path}")
    return path


def properties(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


@dataclass(frozen=True)
class KeyRing:
    encryption: RSAKey  # destination: private, RSA-OAEP-256
    signing: RSAKey  # destination: private, PS512 (the subscriber signs accept/reject)
    service: RSAKey  # the emulated delivery service's own PS512 key

    def write(self, directory: Path) -> tuple[Path, Path]:
        enc = directory / "encryption.jwk.json"
        sig = directory / "signing.jwk.json"
        _write_private(enc, jwk(self.encryption, "enc-key-1", "unwrapKey", "RSA-OAEP-256"))
        _write_private(sig, jwk(self.signing, "sig-key-1", "sign", "PS512"))
        return enc, sig


def jwk(key: RSAKey, kid: str, op: str, alg: str) -> dict[str, Any]:
    data = dict(key.as_dict(private=True))
    data.update(kid=kid, key_ops=[op], alg=alg)
    return data


def _write_private(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data))
    path.chmod(0o600)


@pytest.fixture(scope="session")
def test_keys() -> KeyRing:
    """Three 4096-bit keys, generated once per session (a few seconds)."""
    return KeyRing(*(RSAKey.generate_key(4096, private=True) for _ in range(3)))


# --- an emulator, a destination registered with it, and the gateway's source for it -------

XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<xbau:baugenehmigung.antrag.0200 xmlns:xbau="http://www.xleitstelle.de/xbau/2/6">'
    b"<nachrichtenkopf.g2g><identifikation.nachricht><nachrichtenUUID>"
    b"5b4f6a2e-9a1c-4c2e-8f6d-0a1b2c3d4e5f</nachrichtenUUID></identifikation.nachricht>"
    b"</nachrichtenkopf.g2g></xbau:baugenehmigung.antrag.0200>"
)
SENDER = ("sender", "sender-secret-0123456789")
SUBSCRIBER = ("subscriber", "subscriber-secret-0123456789")
CALLBACK_SECRET = "callback-secret-0123456789-0123456789"


class FakeSink:
    """The accept use case in memory: stores once per content, can fail on purpose."""

    def __init__(self) -> None:
        self.stored: dict[str, IncomingSubmission] = {}
        self.calls = 0
        self.reject_with: GatewayError | None = None
        self.unavailable = False

    async def accept(self, incoming: IncomingSubmission) -> AcceptResult:
        self.calls += 1
        if self.unavailable:
            raise Unavailable("store is down")
        if self.reject_with is not None:
            raise self.reject_with
        key = hashlib.sha256(incoming.xml).hexdigest()
        for attachment in incoming.attachments:
            key += attachment.sha256
        duplicate = key in self.stored
        self.stored.setdefault(key, incoming)
        return AcceptResult(f"gw-{key[:12]}", duplicate)


@dataclass
class Harness:
    server: EmulatorServer
    files: DestinationFiles
    settings: DestinationSettings
    sink: FakeSink
    http: httpx.AsyncClient
    keys: KeyRing
    _source: FitConnectSource | None = None

    @property
    def emulator(self) -> Emulator:
        return self.server.emulator

    @property
    def source(self) -> FitConnectSource:
        if self._source is None:
            self._source = FitConnectSource(
                FitConnectSettings(destinations=(self.settings,)),
                self.sink,
                http=self.http,
                backoff_base=0.05,
                backoff_max=0.2,
            )
        return self._source

    @property
    def worker(self) -> DestinationWorker:
        return self.source.workers[self.settings.destination_id]

    async def send(
        self,
        tamper: Tamper = Tamper.NONE,
        attachments: tuple[OutgoingAttachment, ...] = (),
        xml: bytes = XML,
        deflate: bool = False,
    ) -> Sent:
        return await send(
            api_base_url=self.server.url,
            token_url=f"{self.server.url}/token",
            client_id=SENDER[0],
            client_secret=SENDER[1],
            destination_id=self.settings.destination_id,
            xml=xml,
            attachments=attachments,
            tamper=tamper,
            deflate=deflate,
            http=self.http,
        )

    def case_events(self, sent: Sent) -> list[dict[str, Any]]:
        return self.emulator.events_of(sent.case_id)

    def answers(self, sent: Sent) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for claims in self.case_events(sent):
            ((event, payload),) = claims["events"].items()
            if event.endswith(("accept-submission", "reject-submission")):
                out.append((event.rsplit("/", 1)[1], payload))
        return out


@pytest.fixture
def emulator_server(test_keys: KeyRing) -> Iterator[EmulatorServer]:
    server = start_in_thread(service_key=test_keys.service)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def harness(
    emulator_server: EmulatorServer,
    test_keys: KeyRing,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Harness]:
    enc, sig = test_keys.write(tmp_path)
    files = DestinationFiles("3f0e3c4e-54a3-4b6b-9d7e-6f2f0b9b1a01", enc, sig)
    emulator = emulator_server.emulator
    emulator.add_client(*SENDER)
    register(emulator, files, subscriber=SUBSCRIBER)
    monkeypatch.setenv("FIT_CLIENT_SECRET", SUBSCRIBER[1])
    monkeypatch.setenv("FIT_CALLBACK_SECRET", CALLBACK_SECRET)
    settings = DestinationSettings(
        destination_id=files.destination_id,
        token_url=f"{emulator_server.url}/token",
        api_base_url=emulator_server.url,
        client_id=SUBSCRIBER[0],
        client_secret_env="FIT_CLIENT_SECRET",
        decryption_key_files=(enc,),
        signing_key_file=sig,
        callback_secret_env="FIT_CALLBACK_SECRET",
        poll_interval=3600.0,
        recipient="ags:09162000",
        production=True,
    )
    async with httpx.AsyncClient(timeout=30) as http:
        yield Harness(emulator_server, files, settings, FakeSink(), http, test_keys)
