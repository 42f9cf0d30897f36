"""The emulator's answers to real HTTP calls, validated against the Submission API 1.1.3 document."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from gateway.sources.fitconnect import crypto
from tests.fitconnect.conftest import SENDER, SUBSCRIBER, Harness


class Checked:
    """Sends requests to the emulator and validates every answer against the OpenAPI document."""

    def __init__(self, spec: OpenAPI, base: str, http: httpx.AsyncClient) -> None:
        self.spec = spec
        self.base = base
        self.http = http
        self.seen: list[tuple[str, str, int]] = []

    async def __call__(
        self, method: str, path: str, *, expect: int, **kwargs: Any
    ) -> httpx.Response:
        response = await self.http.request(method, self.base + path, **kwargs)
        assert response.status_code == expect, response.text
        request = MockRequest(self.base, method, path, args=kwargs.get("params"))
        content_type = response.headers.get("content-type", "")
        mock = MockResponse(
            response.content,
            status_code=response.status_code,
            headers=dict(response.headers),
            content_type=content_type.split(";")[0],
        )
        self.spec.validate_response(request, mock)
        self.seen.append((method, path, response.status_code))
        return response


async def _token(http: httpx.AsyncClient, base: str, client: tuple[str, str]) -> dict[str, str]:
    form = {"grant_type": "client_credentials", "client_id": client[0], "client_secret": client[1]}
    response = await http.post(f"{base}/token", data=form)
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_every_subscriber_and_sender_answer_matches_the_document(
    harness: Harness, openapi_path: Path
) -> None:
    base = harness.server.url
    document = yaml.safe_load(openapi_path.read_text(encoding="utf-8"))
    document["servers"] = [{"url": base}]
    config = Config(
        extra_media_type_deserializers={
            "application/problem+json": json.loads,
            "application/jose": lambda body: body.decode("ascii"),
        }
    )
    call = Checked(OpenAPI.from_dict(document, config=config), base, harness.http)
    sender = await _token(harness.http, base, SENDER)
    subscriber = await _token(harness.http, base, SUBSCRIBER)
    destination_id = harness.settings.destination_id
    unknown = str(uuid.uuid4())

    await call("GET", "/v1/info", expect=200)
    await call("GET", "/.well-known/jwks.json", expect=200)
    info = (
        await call("GET", f"/v1/destinations/{destination_id}", expect=200, headers=sender)
    ).json()
    await call("GET", f"/v1/destinations/{destination_id}", expect=401)
    await call("GET", f"/v1/destinations/{unknown}", expect=404, headers=sender)
    key = (
        await call(
            "GET", f"/v1/destinations/{destination_id}/keys/{info['encryptionKid']}", expect=200
        )
    ).json()
    await call("GET", f"/v1/destinations/{destination_id}/keys/sig-key-1", expect=200)
    await call("GET", f"/v1/destinations/{destination_id}/keys/unknown-kid", expect=404)

    attachment_id = str(uuid.uuid4())
    create = {
        "destinationId": destination_id,
        "announcedAttachments": [attachment_id],
        "serviceType": {
            "name": "Bauantrag",
            "identifier": "urn:de:fim:leika:leistung:99010003001006",
        },
    }
    await call(
        "POST",
        "/v1/submissions",
        expect=404,
        headers=sender,
        json={**create, "destinationId": unknown},
    )
    await call(
        "POST",
        "/v1/submissions",
        expect=400,
        headers=sender,
        json={"destinationId": destination_id},
    )
    await call("POST", "/v1/submissions", expect=403, headers=subscriber, json=create)
    created = (
        await call("POST", "/v1/submissions", expect=201, headers=sender, json=create)
    ).json()
    submission_id, case_id = created["submissionId"], created["caseId"]

    public = crypto.rsa_key(key, purpose="wrapKey")
    sealed = crypto.encrypt(b"%PDF-1.7", public, kid=key["kid"])
    jose = {**sender, "Content-Type": "application/jose"}
    base_path = f"/v1/submissions/{submission_id}"
    await call(
        "PUT", f"{base_path}/attachments/{unknown}", expect=422, headers=jose, content=sealed
    )
    await call(
        "PUT",
        f"{base_path}/attachments/{attachment_id}",
        expect=415,
        headers=sender,
        content=sealed,
    )
    await call("PUT", base_path, expect=422, headers=sender, json={"encryptedMetadata": sealed})
    await call(
        "PUT", f"{base_path}/attachments/{attachment_id}", expect=204, headers=jose, content=sealed
    )
    await call(
        "PUT",
        base_path,
        expect=202,
        headers=sender,
        json={"encryptedMetadata": sealed, "encryptedData": sealed},
    )

    await call(
        "GET",
        "/v1/submissions",
        expect=200,
        headers=subscriber,
        params={"destinationId": destination_id},
    )
    await call("GET", "/v1/submissions", expect=403, headers=sender)
    await call("GET", base_path, expect=200, headers=subscriber)
    await call("GET", f"/v1/submissions/{unknown}", expect=404, headers=subscriber)
    await call("GET", f"{base_path}/attachments/{attachment_id}", expect=200, headers=subscriber)
    log = (await call("GET", f"/v1/cases/{case_id}/events", expect=200, headers=subscriber)).json()
    assert len(log["eventLog"]) == 2  # create-submission, submit-submission

    signing = harness.keys.signing
    submitted = harness.emulator.submissions[submission_id]
    claims = {
        "$schema": "https://schema.fitko.de/fit-connect/set-payload/1.0.0/set-payload.schema.json",
        "jti": str(uuid.uuid4()),
        "iss": destination_id,
        "iat": 1,
        "sub": f"submission:{submission_id}",
        "txn": f"case:{case_id}",
        "events": {
            "https://schema.fitko.de/fit-connect/events/accept-submission": {
                "authenticationTags": submitted.tags
            }
        },
    }
    jose_sub = {**subscriber, "Content-Type": "application/jose"}
    events = f"/v1/cases/{case_id}/events"
    await call("POST", events, expect=422, headers=jose_sub, content=b"not.a.set")
    wrong_key = crypto.sign_set(claims, harness.keys.service, kid="sig-key-1")
    await call("POST", events, expect=422, headers=jose_sub, content=wrong_key)
    token = crypto.sign_set(claims, signing, kid="sig-key-1")
    await call("POST", events, expect=204, headers=jose_sub, content=token)
    await call("POST", events, expect=409, headers=jose_sub, content=token)  # a second accept
    await call("GET", base_path, expect=404, headers=subscriber)  # accepted: no longer readable

    assert len(call.seen) == 28  # every call above was validated


async def test_fault_injection_answers_the_chosen_status(harness: Harness) -> None:
    harness.emulator.faults.fail("get-info", status=503, times=2)
    statuses = [
        (await harness.http.get(f"{harness.server.url}/v1/info")).status_code for _ in range(3)
    ]
    assert statuses == [503, 503, 200]
    await harness.http.post(
        f"{harness.server.url}/_emulator/faults", json={"operation": "get-info"}
    )
    assert (await harness.http.get(f"{harness.server.url}/v1/info")).status_code == 503
    await harness.http.delete(f"{harness.server.url}/_emulator/faults")
    assert (await harness.http.get(f"{harness.server.url}/v1/info")).status_code == 200


def test_emulator_refuses_private_keys_as_destination_keys(harness: Harness) -> None:
    from gateway.errors import ConfigError
    from tests.fitconnect.conftest import jwk

    with pytest.raises(ConfigError, match="public"):
        harness.emulator.add_destination(
            encryption_key=jwk(harness.keys.encryption, "enc-key-2", "wrapKey", "RSA-OAEP-256"),
            signing_key=jwk(harness.keys.signing, "sig-key-2", "verify", "PS512"),
        )
