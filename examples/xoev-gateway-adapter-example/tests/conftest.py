"""A real target for the contract tests: xoev-gateway's reference Fachverfahren as a process,
requiring an API token as the real Aktenablage does."""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest


@dataclass(frozen=True)
class Aktenablage:
    url: str
    token: str


@pytest.fixture(scope="session")
def aktenablage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Aktenablage]:
    token = secrets.token_urlsafe(24)
    config = tmp_path_factory.mktemp("aktenablage") / "reference.json"
    config.write_text(json.dumps({"bearer_tokens": [token]}))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "reference-fachverfahren", "--port", str(port)]
        + ["--config", str(config)]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/admin/state", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        yield Aktenablage(url, token)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
