"""The gateway as a FIT-Connect subscriber, end to end with real processes.

A ``serve`` subprocess with ``fit-connect.yaml`` in its configuration directory polls the
emulated Submission API (uvicorn in a thread of the test process, so it outlives gateway
restarts); the emulator's sender encrypts and submits; deliveries land in the example
configuration's file drop (``out/muenchen-kvr``). Keys are generated once per session.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.sources.fitconnect import crypto
from gateway.testing.fitconnect import (
    DestinationFiles,
    EmulatorServer,
    OutgoingAttachment,
    Sent,
    register,
    send,
    start_in_thread,
)
from tests.conftest import DEMO_ADMIN_TOKEN, sample
from tests.fitconnect.conftest import CALLBACK_SECRET, SENDER, SUBSCRIBER, KeyRing
from tests.support.gateway_process import GatewayProcess, gateway_env
from tests.support.messages import with_new_uuid

pytestmark = pytest.mark.slow

DESTINATION = "5d3b1a52-8f0e-4c55-9a41-2b7e6f0c9d11"
EVENTS = "https://schema.fitko.de/fit-connect/events/"
ADMIN = {"Authorization": f"Bearer {DEMO_ADMIN_TOKEN}"}
MUENCHEN = "hundesteuer/valid/anmeldung-muenchen.xml"


@dataclass
class Setup:
    emulator_server: EmulatorServer
    config_dir: Path
    data_dir: Path
    out: Path
    tmp: Path
    env: dict[str, str]
    gateway: GatewayProcess | None = None

    @property
    def emulator(self) -> Any:
        return self.emulator_server.emulator

    def start(self, name: str = "serve") -> GatewayProcess:
        self.gateway = GatewayProcess("serve", self.env, self.tmp / f"{name}.log")
        self.gateway.wait_ready()
        return self.gateway

    def send(self, xml: bytes, attachments: tuple[OutgoingAttachment, ...] = ()) -> Sent:
        return asyncio.run(self.send_async(xml, attachments))

    async def send_async(
        self,
        xml: bytes,
        attachments: tuple[OutgoingAttachment, ...] = (),
        http: httpx.AsyncClient | None = None,
    ) -> Sent:
        url = self.emulator_server.url
        return await send(
            api_base_url=url,
            token_url=f"{url}/token",
            client_id=SENDER[0],
            client_secret=SENDER[1],
            destination_id=DESTINATION,
            xml=xml,
            attachments=attachments,
            http=http,
        )

    def answers(self, sent: Sent) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for claims in self.emulator.events_of(sent.case_id):
            ((event, payload),) = claims["events"].items()
            if event.endswith(("accept-submission", "reject-submission")):
                out.append((event.rsplit("/", 1)[1], payload))
        return out

    def state(self, sent: Sent) -> str:
        return str(self.emulator.submissions[sent.submission_id].state)

    def delivered(self) -> list[dict[str, Any]]:
        if not self.out.is_dir():
            return []
        return [json.loads(p.read_text()) for p in sorted(self.out.glob("*.json"))]

    def stored(self) -> int:
        with sqlite3.connect(self.data_dir / "gateway.db") as conn:
            return int(conn.execute("SELECT count(*) FROM submissions").fetchone()[0])


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def setup(test_keys: KeyRing, tmp_path: Path, config_dir: Path) -> Iterator[Setup]:
    server = start_in_thread(service_key=test_keys.service)
    keys = config_dir / "fit-keys"
    keys.mkdir()
    enc, sig = test_keys.write(keys)
    register(
        server.emulator,
        DestinationFiles(DESTINATION, enc, sig),
        subscriber=SUBSCRIBER,
        callback_secret=CALLBACK_SECRET,
    )
    server.emulator.add_client(*SENDER)
    # No ``recipient``: the message's own ``leser`` decides the municipality here.
    (config_dir / "fit-connect.yaml").write_text(
        "destinations:\n"
        f"  - destination_id: {DESTINATION}\n"
        f"    token_url: {server.url}/token\n"
        f"    api_base_url: {server.url}\n"
        f"    client_id: {SUBSCRIBER[0]}\n"
        "    client_secret_env: FIT_CLIENT_SECRET\n"
        "    decryption_key_files: [fit-keys/encryption.jwk.json]\n"
        "    signing_key_file: fit-keys/signing.jwk.json\n"
        "    callback_secret_env: FIT_CALLBACK_SECRET\n"
        "    poll_interval: 0.2\n"
    )
    # The destination's sender identity and what it may send (docs/security.md).
    (config_dir / "fit-connect-senders.yaml").write_text(
        f"senders:\n  'fit-connect:{DESTINATION}': {{services: ['*'], regions: ['*']}}\n"
    )
    env = gateway_env(
        tmp_path / "data",
        config_dir,
        FIT_CLIENT_SECRET=SUBSCRIBER[1],
        FIT_CALLBACK_SECRET=CALLBACK_SECRET,
        XOEV_GATEWAY_POLL_SECONDS="0.1",
        # a killed serve's leased work items come back after this (tests/e2e/test_worker_crash)
        XOEV_GATEWAY_LEASE_SECONDS="3",
        XOEV_GATEWAY_INTAKE_PROCESSES="1",
    )
    s = Setup(
        server, config_dir, tmp_path / "data", tmp_path / "out" / "muenchen-kvr", tmp_path, env
    )
    try:
        yield s
    finally:
        if s.gateway is not None:
            s.gateway.stop()
        server.stop()


def test_valid_submission_is_stored_delivered_and_accepted_with_its_tags(
    setup: Setup, test_keys: KeyRing
) -> None:
    gateway = setup.start()
    plan = OutgoingAttachment(os.urandom(20_000), "application/pdf", filename="plan.pdf")
    message_uuid, xml = with_new_uuid(sample(MUENCHEN))
    sent = setup.send(xml, (plan,))

    wait_for(lambda: setup.state(sent) == "accepted", "the accept")
    wait_for(lambda: len(setup.delivered()) == 1, "the delivery")

    # the accept SET verifies with the destination's public signing key, with the tags
    # the delivery service recorded at submit
    token = setup.emulator.cases[sent.case_id][-1]
    public = crypto.rsa_key(
        crypto.public_jwk(test_keys.signing, purpose="verify", kid="sig-key-1"), purpose="verify"
    )
    accept = crypto.verify_set(token, {"sig-key-1": public})
    assert accept.event == EVENTS + "accept-submission"
    assert accept.claims["sub"] == f"submission:{sent.submission_id}"
    submitted = setup.emulator.submissions[sent.submission_id]
    assert accept.payload["authenticationTags"] == submitted.tags
    assert [a for a, _ in setup.answers(sent)] == ["accept-submission"]

    [meta] = setup.delivered()
    assert meta["message_uuid"] == message_uuid
    assert meta["sender"] == f"fit-connect:{DESTINATION}"
    stem = meta["delivery_id"]
    assert (setup.out / f"{stem}.attachments" / "1-plan.pdf").read_bytes() == plan.content  # <n>-<name> (sdk.attachment_file_name)

    view = httpx.get(f"{gateway.url}/v1/submissions/{meta['submission_id']}", headers=ADMIN)
    assert view.status_code == 200, view.text
    body = view.json()
    assert body["source"] == "fit-connect"
    assert body["references"] == {
        "submission_id": sent.submission_id,
        "case_id": sent.case_id,
        "destination_id": DESTINATION,
        "service": submitted.service_type["identifier"],
    }
    kinds = [e["kind"] for e in body["events"]]
    assert kinds[0] == "accepted"
    wait_for(
        lambda: (
            "fit-connect.accept-sent"
            in [
                e["kind"]
                for e in httpx.get(
                    f"{gateway.url}/v1/submissions/{meta['submission_id']}", headers=ADMIN
                ).json()["events"]
            ]
        ),
        "the accept-sent event",
    )

    ready = httpx.get(f"{gateway.url}/readyz").json()
    fit = ready["sources"]["fit-connect"]
    assert fit["running"] is True
    assert fit["destinations"][DESTINATION]["last_success"] is not None


def test_callback_with_a_wrong_hmac_is_refused_by_the_running_gateway(setup: Setup) -> None:
    gateway = setup.start()
    body = json.dumps({"type": "x", "submissionIds": []}).encode()
    before = len(setup.emulator.requests)
    response = httpx.post(
        f"{gateway.url}/fit-connect/callbacks/{DESTINATION}",
        content=body,
        headers={"callback-authentication": "00" * 64, "callback-timestamp": str(int(time.time()))},
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    # nothing fetched for it (the regular poll may run meanwhile, but fetches no submission)
    assert not [
        path for _, path in list(setup.emulator.requests)[before:] if "/submissions/" in path
    ]


def test_invalid_xoev_and_unknown_recipient_are_rejected_nothing_delivered(setup: Setup) -> None:
    setup.start()
    bad_xsd = setup.send(
        with_new_uuid(sample("hundesteuer/invalid/missing-required-element.xml"))[1]
    )
    unknown = setup.send(with_new_uuid(sample("hundesteuer/invalid/unknown-recipient.xml"))[1])

    for sent in (bad_xsd, unknown):
        wait_for(lambda sent=sent: setup.state(sent) == "rejected", "the reject")  # type: ignore[misc]

    [(answer, payload)] = setup.answers(bad_xsd)
    assert answer == "reject-submission"
    [problem] = payload["problems"]
    assert problem["type"].endswith("/schema-violation")
    assert problem["instance"] == "data"
    assert "line" in problem["detail"]  # our validation errors, with path and line

    [(answer, payload)] = setup.answers(unknown)
    assert answer == "reject-submission"
    [problem] = payload["problems"]
    assert "recipient" in problem["type"] or "route" in problem["type"], problem
    assert setup.stored() == 0
    assert setup.delivered() == []


def test_killed_between_storing_and_accepting_gives_one_accept_and_one_delivery(
    setup: Setup,
) -> None:
    setup.emulator.faults.hang("send-case-event")
    gateway = setup.start("serve-1")
    sent = setup.send(with_new_uuid(sample(MUENCHEN))[1])

    def accept_posted() -> bool:
        return ("POST", f"/v1/cases/{sent.case_id}/events") in list(setup.emulator.requests)

    wait_for(accept_posted, "the accept POST (the submission is stored)")
    assert setup.stored() == 1
    gateway.kill()
    setup.emulator.faults.clear()
    assert setup.state(sent) == "submitted"

    setup.start("serve-2")
    wait_for(lambda: setup.state(sent) == "accepted", "the accept after the restart")
    wait_for(lambda: len(setup.delivered()) == 1, "the delivery")
    time.sleep(1.0)  # a few more poll rounds: nothing else happens
    assert [a for a, _ in setup.answers(sent)] == ["accept-submission"]
    assert setup.stored() == 1
    assert len(setup.delivered()) == 1


def test_submission_api_answering_503_for_a_while_is_no_reject(setup: Setup) -> None:
    gateway = setup.start()
    for operation in ("get-submission", "send-case-event"):
        setup.emulator.faults.fail(operation, status=503)
    sent = setup.send(with_new_uuid(sample(MUENCHEN))[1])
    wait_for(
        lambda: (
            httpx.get(f"{gateway.url}/readyz").json()["sources"]["fit-connect"]["destinations"][
                DESTINATION
            ]["failures"]
            >= 2
        ),
        "failed rounds",
    )
    assert setup.state(sent) == "submitted"
    setup.emulator.faults.clear()
    wait_for(lambda: setup.state(sent) == "accepted", "the accept after the outage", timeout=60)
    assert [a for a, _ in setup.answers(sent)] == ["accept-submission"]
    wait_for(lambda: len(setup.delivered()) == 1, "the delivery")


STREAM = 300


def test_stream_of_300_with_a_restart_accepted_and_delivered_exactly_once(setup: Setup) -> None:
    setup.start("serve-1")
    sent: list[Sent] = []
    errors: list[BaseException] = []

    async def send_all() -> None:
        async with httpx.AsyncClient(timeout=60) as http:
            for _ in range(STREAM):
                attachment = OutgoingAttachment(os.urandom(4096), "application/pdf", "anlage.pdf")
                xml = with_new_uuid(sample(MUENCHEN))[1]
                sent.append(await setup.send_async(xml, (attachment,), http))

    def sender() -> None:
        try:
            asyncio.run(send_all())
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()

    def accepted() -> int:
        return sum(1 for s in list(setup.emulator.submissions.values()) if s.state == "accepted")

    wait_for(lambda: accepted() >= STREAM // 3, "a third accepted", timeout=120)
    assert setup.gateway is not None
    setup.gateway.kill()
    setup.start("serve-2")
    thread.join(timeout=120)
    assert not errors, errors
    wait_for(lambda: accepted() == STREAM, "all accepted", timeout=180)
    wait_for(lambda: len(setup.delivered()) == STREAM, "all delivered", timeout=60)

    for s in sent:
        assert [a for a, _ in setup.answers(s)] == ["accept-submission"], s
    assert setup.stored() == STREAM
    delivered = setup.delivered()
    assert len({d["message_uuid"] for d in delivered}) == STREAM
    assert all(
        len(list((setup.out / f"{d['delivery_id']}.attachments").iterdir())) == 1 for d in delivered
    )
    with sqlite3.connect(setup.data_dir / "gateway.db") as conn:
        states = conn.execute("SELECT state, count(*) FROM deliveries GROUP BY state").fetchall()
    assert states == [("delivered", STREAM)]
