"""``xoev-gateway demo``: the gateway on the embedded default, end to end, on this machine.

Copies the shipped example configuration (``deploy/config`` in the repository) into a work
directory, starts the API and a worker on a free port of 127.0.0.1, sends every shipped sample
message (valid and invalid), waits for the deliveries and prints what was accepted, rejected
and delivered where.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from rich.console import Console
from rich.table import Table

from gateway.api.app import create_app
from gateway.settings import SHIPPED_SCHEMAS, Settings
from gateway.shipped import copy_example_config
from gateway.store.states import DeliveryState

DEMO_TOKEN = "demo-sender-token"  # noqa: S105 - the documented demo token


@dataclass
class Outcome:
    sample: str
    status: int
    submission_id: str | None
    summary: str


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


def run_demo(workdir: Path) -> int:
    console = Console(width=max(140, Console().width))
    workdir = workdir.resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    config_dir = copy_example_config(workdir / "config")
    # The demo runs the example configuration with its public tokens: demo mode, explicitly.
    settings = Settings(
        data_dir=workdir / "data", config_dir=config_dir, port=free_port(), demo=True
    )
    server = BackgroundServer(settings)
    console.print(f"[bold]xoev-gateway demo[/]: embedded mode at {server.url}, data in {workdir}")
    server.start()
    try:
        outcomes = _send_samples(server.url)
        delivered = _wait_for_deliveries(server.url, outcomes)
    finally:
        server.stop()
    _print(console, outcomes, delivered, workdir)
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


def _wait_for_deliveries(url: str, outcomes: list[Outcome]) -> dict[str, list[dict[str, str]]]:
    headers = {"Authorization": f"Bearer {DEMO_TOKEN}"}
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
    table.add_column("sample")
    table.add_column("HTTP")
    table.add_column("outcome")
    table.add_column("delivered to")
    for o in outcomes:
        if o.submission_id is None:
            table.add_row(o.sample, str(o.status), f"[red]rejected[/]: {o.summary}", "")
            continue
        targets = ", ".join(
            f"{d['destination']} ({d['state']})" for d in delivered.get(o.submission_id, [])
        )
        table.add_row(o.sample, str(o.status), "[green]accepted[/]", targets)
    console.print(table)
    out = workdir / "out"
    console.print(f"[bold]Files delivered under {out}[/]:")
    for path in sorted(out.rglob("*")) if out.exists() else []:
        if path.is_file():
            console.print(f"  {path.relative_to(workdir)}  ({path.stat().st_size} bytes)")
