"""A gateway with senders and an admin of its own (tokens from ``xoev-gateway token new``),
for the access tests in ``tests/security``.

The example configuration's routes, destinations and mappings, with ``senders.yaml``
replaced:

- ``hund-bw``: dog tax registrations (``hundesteuer.anmeldung.0101``) in Baden-Württemberg,
  only under its author ``efa:hundesteuer-online``;
- ``parken-koeln``: resident parking in Köln (granted by its 12-digit ARS), any author;
- ``efa-other``: any service in Nordrhein-Westfalen, only under ``efa:other-online``;
- admin ``ops``.

Demo mode is off: no demo token is configured.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.gateway_process import REPO, GatewayProcess, gateway_env

SENDERS = ("hund-bw", "parken-koeln", "efa-other")
ADMIN = "ops"

GRANTS = {
    "hund-bw": (
        "    services: [hundesteuer.anmeldung.0101]\n"
        "    regions: ['08']\n"
        "    authors: ['efa:hundesteuer-online']\n"
    ),
    "parken-koeln": "    services: [bewohnerparken.antrag.0201]\n    regions: ['053150000000']\n",
    "efa-other": "    services: ['*']\n    regions: ['05']\n    authors: ['efa:other-online']\n",
}


def new_token(name: str, *, admin: bool = False) -> tuple[str, str]:
    """``xoev-gateway token new``, as an operator runs it: (token, sha256)."""
    args = [sys.executable, "-m", "gateway", "token", "new", name, *(["--admin"] if admin else [])]
    out = subprocess.run(args, capture_output=True, text=True, check=True, cwd=REPO).stdout
    lines = dict(line.split(": ", 1) for line in out.splitlines()[:2])
    token, digest = lines["token"].strip(), lines["sha256"].strip()
    assert hashlib.sha256(token.encode()).hexdigest() == digest
    assert len(token) >= 43 and f'token_sha256: "{digest}"' in out
    return token, digest


@dataclass
class AccessGateway:
    process: GatewayProcess
    config_dir: Path
    data_dir: Path
    env: dict[str, str]
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.process.url

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def xml(self, who: str) -> dict[str, str]:
        return {**self.auth(who), "Content-Type": "application/xml"}

    def out(self, destination: str) -> Path:
        return self.config_dir.parent / "out" / destination

    def stored_submissions(self) -> list[tuple[str, str]]:
        """(sender, message_uuid) of every stored submission, read from the database."""
        uri = f"file:{self.data_dir / 'gateway.db'}?mode=ro"
        with sqlite3.connect(uri, uri=True) as conn:
            rows = conn.execute("SELECT sender, message_uuid FROM submissions").fetchall()
        conn.close()
        return [(str(s), str(u)) for s, u in rows]

    def settle(self, client: httpx.Client, location: str, who: str) -> dict[str, Any]:
        deadline = time.monotonic() + 30
        while True:
            view: dict[str, Any] = client.get(location, headers=self.auth(who)).json()
            if view["status"] == "delivered":
                return view
            assert time.monotonic() < deadline, view
            time.sleep(0.1)


def write_config(root: Path) -> tuple[Path, dict[str, str]]:
    config = root / "config"
    shutil.copytree(REPO / "deploy" / "config", config)
    tokens: dict[str, str] = {}
    text = "senders:\n"
    for name in SENDERS:
        tokens[name], digest = new_token(name)
        text += f"  {name}:\n    token_sha256: '{digest}'\n{GRANTS[name]}"
    tokens[ADMIN], digest = new_token(ADMIN, admin=True)
    text += f"admins:\n  {ADMIN}:\n    token_sha256: '{digest}'\n"
    (config / "senders.yaml").write_text(text, encoding="utf-8")
    return config, tokens


@contextmanager
def access_gateway(root: Path) -> Iterator[AccessGateway]:
    config, tokens = write_config(root)
    data = root / "data"
    env = gateway_env(data, config, XOEV_GATEWAY_DEMO="false", XOEV_GATEWAY_POLL_SECONDS="0.1")
    proc = GatewayProcess("serve", env, root / "serve.log")
    try:
        proc.wait_ready()
        yield AccessGateway(proc, config, data, env, tokens)
    finally:
        proc.stop()


def with_author(body: bytes, author: str) -> bytes:
    """The message with another ``autor/kennung`` (what a forging sender would claim)."""
    start = body.index(b"<xgb:autor>")
    kennung = body.index(b"<xgb:kennung>", start) + len(b"<xgb:kennung>")
    end = body.index(b"</xgb:kennung>", kennung)
    return body[:kennung] + author.encode() + body[end:]
