"""``xoev-gateway demo``: the gateway on the embedded default, end to end, on this machine.

Copies the shipped example configuration (``deploy/config`` in the repository) into a work
directory, starts the API and a worker on a free port of 127.0.0.1, sends every shipped sample
message (valid and invalid), waits for the deliveries and prints what was accepted, rejected
and delivered where.

The FIT-Connect path too: a local Submission API (the emulator, in this process) gets a
destination with freshly generated 4096-bit keys, ``fit-connect.yaml`` points the gateway at
it, and a sample message is encrypted and submitted there; the gateway's source fetches,
decrypts and checks it, stores, delivers and answers ``accept-submission``.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from rich.console import Console
from rich.table import Table

from gateway.api.app import create_app
from gateway.settings import SHIPPED_SCHEMAS, Settings
from gateway.shipped import copy_example_config
from gateway.store.states import DeliveryState
from gateway.testing.fitconnect import (
    EmulatorServer,
    ensure_destination_keys,
    register,
    send,
    start_in_thread,
)

DEMO_TOKEN = "demo-sender-token"  # noqa: S105 - the documented demo token
DEMO_ADMIN_TOKEN = "demo-admin-token"  # noqa: S105 - the documented demo token
FIT_SAMPLE = "hundesteuer/valid/anmeldung-muenchen.xml"
FIT_SECRET_ENV = "XOEV_DEMO_FIT_CONNECT_CLIENT_SECRET"  # noqa: S105 - a variable name


@dataclass
class Outcome:
    sample: str
    status: int
    submission_id: str | None
    summary: str
    via: str = "HTTP"
    answer: str = ""


class FitConnectDemo:
    """The emulated Submission API with one destination the gateway subscribes to."""

    def __init__(self, config_dir: Path) -> None:
        subscriber_secret = secrets.token_urlsafe(24)
        self.sender = ("demo-sender", secrets.token_urlsafe(24))
        # The gateway reads secrets from the environment, never from its config files.
        os.environ[FIT_SECRET_ENV] = subscriber_secret
        self.server: EmulatorServer = start_in_thread()
        files = ensure_destination_keys(config_dir / "fit-keys")
        self.destination_id = files.destination_id
        register(self.server.emulator, files, subscriber=("demo-subscriber", subscriber_secret))
        self.server.emulator.add_client(*self.sender)
        url = self.server.url
        (config_dir / "fit-connect.yaml").write_text(
            "# The demo's local FIT-Connect Submission API (docs/fit-connect.md).\n"
            "destinations:\n"
            f"  - destination_id: {self.destination_id}\n"
            f"    token_url: {url}/token\n"
            f"    api_base_url: {url}\n"
            "    client_id: demo-subscriber\n"
            f"    client_secret_env: {FIT_SECRET_ENV}\n"
            "    decryption_key_files: [fit-keys/encryption.jwk.json]\n"
            "    signing_key_file: fit-keys/signing.jwk.json\n"
            "    poll_interval: 0.5\n",
            encoding="utf-8",
        )
        # What the destination may deliver (docs/security.md: transport identities).
        (config_dir / "fit-connect-senders.yaml").write_text(
            f"senders:\n  'fit-connect:{self.destination_id}':\n"
            "    services: ['*']\n    regions: ['*']\n",
            encoding="utf-8",
        )

    def submit(self, database: Path) -> Outcome:
        """Encrypt and submit the sample (with a fresh message UUID: the HTTP run sent it
        already), wait for the gateway's answer on the case."""
        xml, message_uuid = _fresh_uuid((SHIPPED_SCHEMAS / "samples" / FIT_SAMPLE).read_bytes())
        url = self.server.url
        sent = asyncio.run(
            send(
                api_base_url=url,
                token_url=f"{url}/token",
                client_id=self.sender[0],
                client_secret=self.sender[1],
                destination_id=self.destination_id,
                xml=xml,
            )
        )
        emulator = self.server.emulator
        deadline = time.monotonic() + 60
        while emulator.submissions[sent.submission_id].state == "submitted":
            if time.monotonic() > deadline:
                return Outcome(f"/{FIT_SAMPLE}", 0, None, "no answer", "FIT-Connect", "none")
            time.sleep(0.1)
        answers = [
            next(iter(claims["events"])).rsplit("/", 1)[1]
            for claims in emulator.events_of(sent.case_id)
            if str(claims.get("iss")) == self.destination_id
        ]
        with sqlite3.connect(database) as conn:
            row = conn.execute(
                "SELECT id FROM submissions WHERE message_uuid = ?", (message_uuid,)
            ).fetchone()
        accepted = answers == ["accept-submission"] and row is not None
        return Outcome(
            f"/{FIT_SAMPLE}",
            202 if accepted else 422,
            str(row[0]) if row else None,
            f"case {sent.case_id}",
            "FIT-Connect",
            ", ".join(answers),
        )

    def stop(self) -> None:
        self.server.stop()


def _fresh_uuid(xml: bytes) -> tuple[bytes, str]:
    new = str(uuid.uuid4())
    pattern = re.compile(rb"(<(?:\w+:)?nachrichtenUUID>)[^<]+(</)")
    return pattern.sub(rb"\g<1>" + new.encode() + rb"\g<2>", xml, count=1), new


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class BackgroundServer:
    """A uvicorn server in a thread, for the demo and tests; stops on ``stop``."""

    def __init__(self, settings: Settings) -> None:
        settings.port = settings.port or free_port()
        self.url = f"http://{settings.host}:{settings.port}"
        config = uvicorn.Config(
            create_app(settings), host=settings.host, port=settings.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, timeout: float = 30.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the gateway failed to start; see the log above")
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start in time")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def run_demo(workdir: Path, port: int | None = None) -> int:
    """``port``: where the gateway listens (default: a free one)."""
    console = Console(width=max(140, Console().width))
    workdir = workdir.resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    config_dir = copy_example_config(workdir / "config")
    console.print("FIT-Connect: local Submission API, generating the destination's keys ...")
    fit = FitConnectDemo(config_dir)
    # The demo runs the example configuration with its public tokens: demo mode, explicitly.
    settings = Settings(
        data_dir=workdir / "data", config_dir=config_dir, port=port or free_port(), demo=True
    )
    server = BackgroundServer(settings)
    console.print(f"[bold]xoev-gateway demo[/]: embedded mode at {server.url}, data in {workdir}")
    console.print(f"FIT-Connect Submission API (emulated) at {fit.server.url}")
    try:
        server.start()
        try:
            outcomes = _send_samples(server.url)
            outcomes.append(fit.submit(settings.data_dir / "gateway.db"))
            delivered = _wait_for_deliveries(server.url, outcomes)
            fit_view = _status(server.url, outcomes[-1].submission_id)
        finally:
            server.stop()
    finally:
        fit.stop()
    _print(console, outcomes, delivered, workdir)
    _print_fit_connect(console, fit_view)
    expected_ok = all((o.status == 202) == ("/valid/" in o.sample) for o in outcomes)
    all_delivered = all(
        d["state"] == DeliveryState.DELIVERED
        for deliveries in delivered.values()
        for d in deliveries
    )
    return 0 if expected_ok and all_delivered else 1


def _send_samples(url: str) -> list[Outcome]:
    outcomes = []
    headers = {"Authorization": f"Bearer {DEMO_TOKEN}", "Content-Type": "application/xml"}
    samples = sorted((SHIPPED_SCHEMAS / "samples").glob("*/*/*.xml"))
    with httpx.Client(base_url=url, timeout=30) as client:
        for path in samples:
            rel = str(path.relative_to(SHIPPED_SCHEMAS / "samples"))
            resp = client.post("/v1/submissions", content=path.read_bytes(), headers=headers)
            body = resp.json()
            if resp.status_code == 202:
                outcomes.append(Outcome(f"/{rel}", 202, body["id"], "accepted"))
            else:
                outcomes.append(Outcome(f"/{rel}", resp.status_code, None, body.get("detail", "")))
    return outcomes


def _status(url: str, submission_id: str | None) -> dict[str, Any] | None:
    if submission_id is None:
        return None
    headers = {"Authorization": f"Bearer {DEMO_ADMIN_TOKEN}"}
    view: dict[str, Any] = httpx.get(
        f"{url}/v1/submissions/{submission_id}", headers=headers, timeout=30
    ).json()
    return view


def _wait_for_deliveries(url: str, outcomes: list[Outcome]) -> dict[str, list[dict[str, str]]]:
    # The admin may read every submission; FIT-Connect's have their own sender identity.
    headers = {"Authorization": f"Bearer {DEMO_ADMIN_TOKEN}"}
    result: dict[str, list[dict[str, str]]] = {}
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=url, timeout=30, headers=headers) as client:
        for outcome in outcomes:
            if outcome.submission_id is None:
                continue
            while True:
                view = client.get(f"/v1/submissions/{outcome.submission_id}").json()
                if all(d["state"] != DeliveryState.PENDING for d in view["deliveries"]):
                    break
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            result[outcome.submission_id] = view["deliveries"]
    return result


def _print(
    console: Console,
    outcomes: list[Outcome],
    delivered: dict[str, list[dict[str, str]]],
    workdir: Path,
) -> None:
    table = Table(title="Submissions")
    # The sample names identify the case: never cut them (the other columns wrap).
    table.add_column("sample", no_wrap=True, min_width=max(len(o.sample) for o in outcomes))
    table.add_column("via")
    table.add_column("answer")
    table.add_column("outcome")
    table.add_column("delivered to")
    for o in outcomes:
        answer = o.answer or str(o.status)
        if o.submission_id is None:
            table.add_row(o.sample, o.via, answer, f"[red]rejected[/]: {o.summary}", "")
            continue
        targets = ", ".join(
            f"{d['destination']} ({d['state']})" for d in delivered.get(o.submission_id, [])
        )
        outcome = "[green]accepted[/]" + (f" ({o.summary})" if o.via != "HTTP" else "")
        table.add_row(o.sample, o.via, answer, outcome, targets)
    console.print(table)
    out = workdir / "out"
    console.print(f"[bold]Files delivered under {out}[/]:")
    for path in sorted(out.rglob("*")) if out.exists() else []:
        if path.is_file():
            console.print(f"  {path.relative_to(workdir)}  ({path.stat().st_size} bytes)")


def _print_fit_connect(console: Console, view: dict[str, Any] | None) -> None:
    if view is None:
        console.print("[red]FIT-Connect: the submission was not stored[/]")
        return
    refs = view.get("references", {})
    console.print(
        f"[bold]FIT-Connect submission[/] {view['id']}: source {view['source']}, "
        f"FIT-Connect submission {refs.get('submission_id')}, case {refs.get('case_id')}, "
        f"destination {refs.get('destination_id')}"
    )
    console.print("  events: " + ", ".join(e["kind"] for e in view["events"]))
