"""FIT-Connect intake through real processes: the emulated Submission API (in this process)
holds N encrypted submissions with a 20 kB attachment each; a ``serve`` process subscribes to
its destination. One signed callback wakes the source; the rate is N over the time until the
last ``accept-submission`` is on its case (fetch, verify, decrypt, intake, store, accept).

The source works through one destination's submissions one at a time (docs/fit-connect.md),
so the same process's HTTP intake at concurrency 1 is the reference beside it.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import servers
from bench.workload import REPO, UUID_ELEMENT
from gateway.sources.fitconnect import crypto
from gateway.testing.fitconnect import (
    OutgoingAttachment,
    Sent,
    ensure_destination_keys,
    register,
    send,
    start_in_thread,
)
from tests.support.processes import ServerProcess

SAMPLE = REPO / "schemas" / "samples" / "hundesteuer" / "valid" / "anmeldung-muenchen.xml"
NEW_SUBMISSIONS = "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-submissions"
SENDERS = 8


@dataclass
class Intake:
    count: int
    seconds: float
    server: ServerProcess

    @property
    def rate(self) -> float:
        return self.count / self.seconds


def _xml() -> bytes:
    return UUID_ELEMENT.sub(
        rb"\g<1>" + str(uuid.uuid4()).encode() + rb"\g<2>", SAMPLE.read_bytes(), count=1
    )


def run(workdir: Path, count: int) -> Intake:
    """The measurement, with the gateway still running (the caller measures HTTP intake on
    it and stops it)."""
    config = workdir / "fit-config"
    shutil.rmtree(config, ignore_errors=True)
    shutil.copytree(REPO / "deploy" / "config", config)
    emulator_server = start_in_thread()
    client_secret, callback_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
    sender = ("bench-sender", secrets.token_urlsafe(24))
    files = ensure_destination_keys(workdir / "fit-keys")
    emulator = emulator_server.emulator
    register(
        emulator,
        files,
        subscriber=("bench-subscriber", client_secret),
        callback_secret=callback_secret,
    )
    emulator.add_client(*sender)
    url = emulator_server.url
    (config / "fit-connect.yaml").write_text(
        "destinations:\n"
        f"  - destination_id: {files.destination_id}\n"
        f"    token_url: {url}/token\n"
        f"    api_base_url: {url}\n"
        "    client_id: bench-subscriber\n"
        "    client_secret_env: BENCH_FIT_CLIENT_SECRET\n"
        f"    decryption_key_files: [{files.encryption_key_file}]\n"
        f"    signing_key_file: {files.signing_key_file}\n"
        "    callback_secret_env: BENCH_FIT_CALLBACK_SECRET\n"
        "    poll_interval: 3600\n"  # only the callback below starts the work
    )
    gateway = servers.http_server(
        "fitconnect",
        ["gateway", "serve"],
        workdir,
        {
            "XOEV_GATEWAY_DATA_DIR": str(workdir / "fitconnect-data"),
            "XOEV_GATEWAY_CONFIG_DIR": str(config),
            "BENCH_FIT_CLIENT_SECRET": client_secret,
            "BENCH_FIT_CALLBACK_SECRET": callback_secret,
        },
    )
    try:
        _wait_first_round(gateway, files.destination_id)
        sent = asyncio.run(_send_all(url, sender, files.destination_id, count))
        body = json.dumps(
            {
                "type": NEW_SUBMISSIONS,
                "submissions": [
                    {
                        "destinationId": s.destination_id,
                        "submissionId": s.submission_id,
                        "caseId": s.case_id,
                    }
                    for s in sent[:1]
                ],
            }
        ).encode()
        stamp = str(int(time.time()))
        started = time.perf_counter()
        answer = httpx.post(
            f"{gateway.url}/fit-connect/callbacks/{files.destination_id}",
            content=body,
            headers={
                "callback-timestamp": stamp,
                "callback-authentication": crypto.callback_signature(callback_secret, stamp, body),
            },
        )
        answer.raise_for_status()
        deadline = time.monotonic() + 600
        while sum(1 for s in sent if emulator.submissions[s.submission_id].state == "accepted") < (
            count
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("FIT-Connect intake did not finish in 10 minutes")
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
    except BaseException:
        gateway.stop()
        raise
    finally:
        emulator_server.stop()
    return Intake(count, elapsed, gateway)


def _wait_first_round(gateway: ServerProcess, destination_id: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = httpx.get(f"{gateway.url}/readyz").json()["sources"]["fit-connect"]
        if state["destinations"][destination_id]["last_success"] is not None:
            return
        time.sleep(0.1)
    raise RuntimeError("the FIT-Connect source never completed a round")


async def _send_all(url: str, sender: tuple[str, str], destination: str, count: int) -> list[Sent]:
    queue = list(range(count))
    out: list[Sent] = []

    async def one_sender(http: httpx.AsyncClient) -> None:
        while queue:
            queue.pop()
            out.append(
                await send(
                    api_base_url=url,
                    token_url=f"{url}/token",
                    client_id=sender[0],
                    client_secret=sender[1],
                    destination_id=destination,
                    xml=_xml(),
                    attachments=(OutgoingAttachment(os.urandom(20_000), filename="anlage.pdf"),),
                    http=http,
                )
            )

    async with httpx.AsyncClient(timeout=60) as http:
        await asyncio.gather(*(one_sender(http) for _ in range(SENDERS)))
    return out
