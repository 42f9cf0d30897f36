"""Sender → emulated Submission API (real HTTP) → the gateway's FIT-Connect source → sink."""

from __future__ import annotations

import asyncio
import json
import os
import time

import httpx
import pytest

from gateway.errors import ErrorDetail, InvalidMessage, NoRoute
from gateway.sources.fitconnect import crypto
from gateway.sources.fitconnect.client import SubmissionApiClient
from gateway.sources.fitconnect.problems import PROBLEM_BASE
from gateway.sources.fitconnect.source import FitConnectSource
from gateway.sources.fitconnect.subscriber import Outcome
from gateway.testing.fitconnect import OutgoingAttachment, Tamper
from gateway.testing.fitconnect.server import EmulatorServer, free_port
from tests.fitconnect.conftest import CALLBACK_SECRET, XML, Harness

PDF = b"%PDF-1.7\n" + os.urandom(100_000)


async def test_valid_submission_is_stored_then_accepted_with_its_tags(harness: Harness) -> None:
    attachment = OutgoingAttachment(PDF, "application/pdf", filename="plan.pdf")
    sent = await harness.send(attachments=(attachment,), deflate=True)

    assert await harness.worker.round() is True

    [incoming] = harness.sink.stored.values()
    assert incoming.xml == XML
    assert incoming.source == "fit-connect"
    assert incoming.recipient == "ags:09162000"
    assert incoming.sender == f"fit-connect:{sent.destination_id}"
    assert incoming.transport_refs["submission_id"] == sent.submission_id
    assert incoming.transport_refs["case_id"] == sent.case_id
    [got] = incoming.attachments
    assert (got.name, got.media_type, got.read()) == ("plan.pdf", "application/pdf", PDF)

    # the accept SET on the case verifies with the destination's public signing key
    emulator = harness.emulator
    tokens = emulator.cases[sent.case_id]
    public = crypto.rsa_key(
        emulator.destinations[sent.destination_id].signing_key, purpose="verify"
    )
    accept = crypto.verify_set(tokens[-1], {"sig-key-1": public})
    assert accept.event == "https://schema.fitko.de/fit-connect/events/accept-submission"
    assert accept.claims["iss"] == sent.destination_id
    assert accept.claims["sub"] == f"submission:{sent.submission_id}"
    assert accept.claims["txn"] == f"case:{sent.case_id}"
    submitted = emulator.submissions[sent.submission_id]
    assert accept.payload["authenticationTags"] == submitted.tags
    assert submitted.tags is not None
    assert (
        submitted.tags["attachments"][attachment.attachment_id]
        == (submitted.attachments[attachment.attachment_id].rsplit(".", 1)[1])
    )
    assert submitted.state == "accepted"
    assert [a for a, _ in harness.answers(sent)] == ["accept-submission"]


@pytest.mark.parametrize(
    ("tamper", "slug", "instance"),
    [
        (Tamper.BAD_HASH, "hash-mismatch", "data"),
        (Tamper.WRONG_TAG, "authentication-tag-incorrect", "metadata"),
        (Tamper.GARBAGE_JWE, "encryption-issue", "data"),
        (Tamper.BAD_METADATA, "schema-violation", "metadata"),
        (Tamper.JSON_DATA, "unsupported-data-format", "data"),
    ],
)
async def test_tampered_submissions_are_rejected_with_a_specific_problem(
    harness: Harness, tamper: Tamper, slug: str, instance: str
) -> None:
    sent = await harness.send(tamper=tamper)

    assert await harness.worker.round() is True

    assert harness.sink.calls == 0
    [(event, payload)] = harness.answers(sent)
    assert event == "reject-submission"
    [problem] = payload["problems"]
    assert problem["type"] == PROBLEM_BASE + slug
    assert problem["instance"] == instance
    assert harness.emulator.submissions[sent.submission_id].state == "rejected"


async def test_attachment_hash_mismatch_names_the_attachment(harness: Harness) -> None:
    attachment = OutgoingAttachment(PDF)
    sent = await harness.send(attachments=(attachment,))
    # swap the stored attachment for another one encrypted to the same key; the SET's tag
    # is then wrong too: the subscriber must refuse it before looking at the hash
    stored = harness.emulator.submissions[sent.submission_id]
    public = crypto.rsa_key(
        harness.emulator.destinations[sent.destination_id].encryption_key, purpose="wrapKey"
    )
    stored.attachments[attachment.attachment_id] = crypto.encrypt(b"other", public, kid="enc-key-1")

    await harness.worker.round()

    [(event, payload)] = harness.answers(sent)
    assert event == "reject-submission"
    assert payload["problems"][0]["type"] == PROBLEM_BASE + "authentication-tag-incorrect"
    assert payload["problems"][0]["instance"] == f"attachment:{attachment.attachment_id}"


async def test_sink_rejection_becomes_reject_with_our_errors(harness: Harness) -> None:
    harness.sink.reject_with = InvalidMessage(
        "XSD validation failed",
        [ErrorDetail("/xbau:baugenehmigung.antrag.0200/antragsteller", 7, "element missing")],
    )
    sent = await harness.send()

    await harness.worker.round()

    [(event, payload)] = harness.answers(sent)
    assert event == "reject-submission"
    [problem] = payload["problems"]
    assert problem["type"] == PROBLEM_BASE + "schema-violation"
    assert problem["instance"] == "data"
    assert (
        "/xbau:baugenehmigung.antrag.0200/antragsteller (line 7): element missing"
        in problem["detail"]
    )
    assert harness.sink.stored == {}


async def test_no_route_is_rejected_with_the_gateway_problem_type(harness: Harness) -> None:
    harness.sink.reject_with = NoRoute("no route for municipality 09162000")
    sent = await harness.send()

    await harness.worker.round()

    [(_, payload)] = harness.answers(sent)
    assert payload["problems"][0]["type"] == "https://xoev-gateway.de/problems/no-route"


async def test_sink_unavailable_leaves_it_with_fit_connect_then_accepts(harness: Harness) -> None:
    harness.sink.unavailable = True
    sent = await harness.send()

    assert await harness.worker.round() is False  # deferred: the worker backs off
    assert harness.answers(sent) == []
    assert harness.emulator.submissions[sent.submission_id].state == "submitted"

    harness.sink.unavailable = False
    assert await harness.worker.round() is True
    assert [a for a, _ in harness.answers(sent)] == ["accept-submission"]
    assert len(harness.sink.stored) == 1


async def test_duplicate_after_crash_is_accepted_exactly_once(harness: Harness) -> None:
    sent = await harness.send()
    # the sink commits, then posting the accept fails (as if the process died in between)
    harness.emulator.faults.fail("send-case-event", status=503, times=1)
    with pytest.raises(Exception, match="503"):
        await harness.worker.round()
    assert len(harness.sink.stored) == 1
    assert harness.answers(sent) == []

    assert await harness.worker.round() is True
    assert harness.sink.calls == 2  # the second time the sink said: duplicate
    assert [a for a, _ in harness.answers(sent)] == ["accept-submission"]
    assert len(harness.sink.stored) == 1
    # nothing left to pick up, and a third round changes nothing
    await harness.worker.round()
    assert len(harness.answers(sent)) == 1


async def test_a_409_for_our_own_earlier_answer_counts_as_done(harness: Harness) -> None:
    sent = await harness.send()
    await harness.worker.round()
    subscriber = harness.worker.subscriber
    submission = harness.emulator.submissions[sent.submission_id]
    from gateway.sources.fitconnect.client import Submission

    doc = Submission.model_validate({**submission.reduced(), "encryptedMetadata": "a.b.c.d.e"})
    payload = {"authenticationTags": submission.tags}
    assert (
        await subscriber._answer(
            doc, "https://schema.fitko.de/fit-connect/events/accept-submission", payload
        )
        is False
    )
    assert len(harness.answers(sent)) == 1


@pytest.mark.parametrize("status", [503, 429, 403])
async def test_emulator_errors_back_off_and_lose_nothing(harness: Harness, status: int) -> None:
    sent = await harness.send()
    harness.emulator.faults.fail("get-submissions-for-pickup", status=status, times=2)
    harness.emulator.faults.fail("get-submission", status=503, times=1)
    harness.emulator.faults.fail("get-case-events", status=502, times=1)
    done = asyncio.Event()
    source = FitConnectSource(
        harness.source.settings,
        harness.sink,
        http=harness.http,
        backoff_base=0.05,
        backoff_max=0.2,
        on_result=lambda r: done.set() if r.outcome is Outcome.ACCEPTED else None,
    )
    worker = source.workers[sent.destination_id]
    worker.interval = 0.05
    task = asyncio.create_task(source.run())
    try:
        await asyncio.wait_for(done.wait(), timeout=20)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    pickups = [p for m, p in harness.emulator.requests if m == "GET" and p == "/v1/submissions"]
    assert len(pickups) >= 3
    assert worker.backoff.failures == 0
    assert [a for a, _ in harness.answers(sent)] == ["accept-submission"]


def _callback(body: bytes, secret: str = CALLBACK_SECRET, age: int = 0) -> dict[str, str]:
    timestamp = str(int(time.time()) - age)
    return {
        "callback-authentication": crypto.callback_signature(secret, timestamp, body),
        "callback-timestamp": timestamp,
        "content-type": "application/json",
    }


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(
            lambda b: _callback(b, secret="wrong-secret-0123456789-0123456789"), id="wrong-hmac"
        ),
        pytest.param(lambda b: _callback(b, age=301), id="older-than-5-minutes"),
        pytest.param(lambda b: {"content-type": "application/json"}, id="unsigned"),
    ],
)
async def test_bad_callbacks_are_401_and_fetch_nothing(harness: Harness, headers) -> None:
    sent = await harness.send()
    body = json.dumps(
        {
            "type": "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-submissions",
            "submissions": [
                {
                    "destinationId": sent.destination_id,
                    "submissionId": sent.submission_id,
                    "caseId": sent.case_id,
                }
            ],
        }
    ).encode()
    before = len(harness.emulator.requests)
    transport = httpx.ASGITransport(app=harness.source.callback_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.post(
            f"/fit-connect/callbacks/{sent.destination_id}", content=body, headers=headers(body)
        )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert harness.worker._named == []
    assert len(harness.emulator.requests) == before


async def test_signed_callback_from_the_emulator_triggers_the_fetch(harness: Harness) -> None:
    """The emulator calls the source's callback route over HTTP; the source, polling only
    hourly, fetches and accepts at once."""
    import uvicorn

    done = asyncio.Event()
    source = FitConnectSource(
        harness.source.settings,
        harness.sink,
        http=harness.http,
        on_result=lambda r: done.set() if r.outcome is Outcome.ACCEPTED else None,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(source.callback_app(), host="127.0.0.1", port=port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    destination = harness.emulator.destinations[harness.settings.destination_id]
    destination.callback_url = (
        f"http://127.0.0.1:{port}/fit-connect/callbacks/{destination.destination_id}"
    )
    destination.callback_secret = CALLBACK_SECRET
    running = asyncio.create_task(source.run())
    try:
        await asyncio.sleep(0.2)  # the first (empty) poll round is over; next poll in an hour
        sent = await harness.send()
        await asyncio.wait_for(done.wait(), timeout=20)
    finally:
        running.cancel()
        server.should_exit = True
        await serving
        with pytest.raises(asyncio.CancelledError):
            await running
    assert [a for a, _ in harness.answers(sent)] == ["accept-submission"]


async def test_client_refetches_jwks_on_unknown_kid_and_caches_tokens(
    emulator_server: EmulatorServer, harness: Harness
) -> None:
    client = SubmissionApiClient(
        api_base_url=emulator_server.url,
        token_url=f"{emulator_server.url}/token",
        client_id="subscriber",
        client_secret=os.environ["FIT_CLIENT_SECRET"],
        http=harness.http,
    )
    first = await client.token()
    assert await client.token() == first
    keys = await client.service_keys()
    assert list(keys) == [emulator_server.emulator.service_kid]
    emulator_server.emulator.service_kid = "rotated-kid-0001"
    assert list(await client.service_keys()) != ["rotated-kid-0001"]  # cached
    assert list(await client.service_keys(refresh=True)) == ["rotated-kid-0001"]
    tokens = [p for m, p in emulator_server.emulator.requests if p == "/token"]
    assert len(tokens) == 1


async def test_deferred_submission_is_retried_by_id_even_when_no_longer_listed(
    harness: Harness,
) -> None:
    harness.emulator.forward_on_download = True  # downloaded: off the pickup list
    harness.sink.unavailable = True
    sent = await harness.send()
    assert await harness.worker.round() is False
    assert harness.emulator.submissions[sent.submission_id].state == "forwarded"

    harness.sink.unavailable = False
    assert await harness.worker.round() is True
    assert [a for a, _ in harness.answers(sent)] == ["accept-submission"]
