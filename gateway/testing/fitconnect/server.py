"""Running the emulator: in a thread (tests, demo) or as a process (``serve``), and the
destination set-up an operator needs for a smoke test (keys on disk, a settings snippet)."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from joserfc.jwk import RSAKey

from gateway.sources.fitconnect import crypto
from gateway.testing.fitconnect.emulator import Destination, Emulator

DEMO_DESTINATION = "7c1c9f6e-2b4a-4f5e-8a3d-1e2f3a4b5c6d"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class EmulatorServer:
    """The emulator under uvicorn in a daemon thread; ``stop`` ends it."""

    def __init__(self, emulator: Emulator, host: str, port: int) -> None:
        self.emulator = emulator
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(emulator.app, host=host, port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, timeout: float = 30.0) -> EmulatorServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the FIT-Connect emulator did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_in_thread(
    host: str = "127.0.0.1", port: int | None = None, *, service_key: RSAKey | None = None
) -> EmulatorServer:
    port = port or free_port(host)
    emulator = Emulator(f"http://{host}:{port}", service_key=service_key)
    return EmulatorServer(emulator, host, port).start()


@dataclass(frozen=True)
class DestinationFiles:
    """A destination's private keys on disk (mode 0600), as the gateway's settings name them."""

    destination_id: str
    encryption_key_file: Path
    signing_key_file: Path

    def public_keys(self) -> tuple[dict[str, Any], dict[str, Any]]:
        enc = crypto.load_jwk_file(self.encryption_key_file)
        sig = crypto.load_jwk_file(self.signing_key_file)
        return _public(enc), _public(sig)


def ensure_destination_keys(
    directory: Path, destination_id: str = DEMO_DESTINATION
) -> DestinationFiles:
    """Generate (once) a 4096-bit encryption and signing key pair for a destination."""
    directory.mkdir(parents=True, exist_ok=True)
    files = DestinationFiles(
        destination_id, directory / "encryption.jwk.json", directory / "signing.jwk.json"
    )
    for path, op, alg in (
        (files.encryption_key_file, "unwrapKey", crypto.JWE_ALG),
        (files.signing_key_file, "sign", crypto.SET_ALG),
    ):
        if not path.exists():
            key = RSAKey.generate_key(4096, private=True)
            data = dict(key.as_dict(private=True))
            data.update(kid=str(uuid.uuid4()), key_ops=[op], alg=alg)
            path.touch(mode=0o600)
            path.chmod(0o600)
            path.write_text(json.dumps(data), encoding="utf-8")
    return files


def register(
    emulator: Emulator,
    files: DestinationFiles,
    *,
    subscriber: tuple[str, str],
    callback_url: str | None = None,
    callback_secret: str | None = None,
) -> Destination:
    enc, sig = files.public_keys()
    destination = emulator.add_destination(
        destination_id=files.destination_id,
        encryption_key=enc,
        signing_key=sig,
        callback_url=callback_url,
        callback_secret=callback_secret,
    )
    emulator.add_client(*subscriber, destination_id=files.destination_id)
    return destination


def _public(private: dict[str, Any]) -> dict[str, Any]:
    op = {"unwrapKey": "wrapKey", "sign": "verify"}[private["key_ops"][0]]
    public = {k: v for k, v in private.items() if k in ("kty", "n", "e", "kid", "alg")}
    public["key_ops"] = [op]
    return public


def run(
    host: str = "127.0.0.1",
    port: int = 8090,
    *,
    keys_dir: Path | None = None,
    subscriber: tuple[str, str] = ("subscriber", "subscriber-secret"),
    sender: tuple[str, str] = ("sender", "sender-secret"),
    callback_url: str | None = None,
    callback_secret: str | None = None,
) -> None:
    """Serve the emulator until interrupted; with ``keys_dir`` one destination is set up."""
    emulator = Emulator(f"http://{host}:{port}")
    emulator.add_client(*sender)
    if keys_dir is not None:
        files = ensure_destination_keys(keys_dir)
        register(
            emulator,
            files,
            subscriber=subscriber,
            callback_url=callback_url,
            callback_secret=callback_secret,
        )
    uvicorn.run(emulator.app, host=host, port=port, log_level="info")
