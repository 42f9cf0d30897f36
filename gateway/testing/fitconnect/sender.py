"""A FIT-Connect sender, as an online service would be: encrypt to the destination, submit.

``send`` builds the metadata (hashes of data and attachments), encrypts metadata, data and
each attachment to the destination's public encryption key, and runs create, upload and
submit against a Submission API (the emulator, or a real test instance). ``tamper`` breaks
one thing on purpose, so that tests can watch the subscriber reject it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx

from gateway.sources.fitconnect import crypto

DEFAULT_SERVICE = ("urn:de:fim:leika:leistung:99010003001006", "Bauantrag")
XOEV_SCHEMA_URI = "urn:xoev-de:xleitstelle:standard:xbau"
METADATA_SCHEMA_ID = "https://schema.fitko.de/fit-connect/metadata/1.0.0/metadata.schema.json"


class Tamper(StrEnum):
    NONE = "none"
    BAD_HASH = "bad-hash"  # metadata names a wrong SHA-512 for the data
    WRONG_TAG = "wrong-tag"  # the delivery service's submit SET carries a wrong tag
    GARBAGE_JWE = "garbage-jwe"  # the data JWE does not decrypt
    BAD_METADATA = "bad-metadata"  # metadata fails its JSON Schema
    JSON_DATA = "json-data"  # data announced as application/json


@dataclass(frozen=True)
class OutgoingAttachment:
    content: bytes
    media_type: str = "application/pdf"
    filename: str | None = None
    purpose: str = "attachment"
    attachment_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True)
class Sent:
    destination_id: str
    submission_id: str
    case_id: str


async def send(
    *,
    api_base_url: str,
    token_url: str,
    client_id: str,
    client_secret: str,
    destination_id: str,
    xml: bytes,
    attachments: tuple[OutgoingAttachment, ...] = (),
    service: tuple[str, str] = DEFAULT_SERVICE,
    tamper: Tamper = Tamper.NONE,
    deflate: bool = False,
    http: httpx.AsyncClient | None = None,
) -> Sent:
    own = http is None
    client = http or httpx.AsyncClient(timeout=30)
    base = api_base_url.rstrip("/")
    try:
        token = await _token(client, token_url, client_id, client_secret)
        auth = {"Authorization": f"Bearer {token}"}
        destination = _ok(
            await client.get(f"{base}/v1/destinations/{destination_id}", headers=auth)
        ).json()
        kid = destination["encryptionKid"]
        jwk = _ok(await client.get(f"{base}/v1/destinations/{destination_id}/keys/{kid}")).json()
        public = crypto.rsa_key(jwk, purpose="wrapKey")

        created = _ok(
            await client.post(
                f"{base}/v1/submissions",
                headers=auth,
                json={
                    "destinationId": destination_id,
                    "announcedAttachments": [a.attachment_id for a in attachments],
                    "serviceType": {"identifier": service[0], "name": service[1]},
                },
            )
        ).json()
        submission_id = created["submissionId"]

        def seal(content: bytes) -> str:
            return crypto.encrypt(content, public, kid=kid, deflate=deflate)

        for attachment in attachments:
            _ok(
                await client.put(
                    f"{base}/v1/submissions/{submission_id}/attachments/{attachment.attachment_id}",
                    headers={**auth, "Content-Type": "application/jose"},
                    content=seal(attachment.content).encode(),
                )
            )
        metadata = build_metadata(xml, attachments, service, tamper)
        data = seal(xml)
        if tamper is Tamper.GARBAGE_JWE:
            parts = data.split(".")
            parts[1] = parts[1][::-1]  # a scrambled content key: decryption must fail
            data = ".".join(parts)
        if tamper is Tamper.WRONG_TAG:
            _ok(await client.post(f"{base}/_emulator/tamper-tags/{submission_id}"))
        _ok(
            await client.put(
                f"{base}/v1/submissions/{submission_id}",
                headers=auth,
                json={
                    "encryptedMetadata": seal(json.dumps(metadata).encode()),
                    "encryptedData": data,
                },
            )
        )
        return Sent(destination_id, submission_id, created["caseId"])
    finally:
        if own:
            await client.aclose()


def build_metadata(
    xml: bytes,
    attachments: tuple[OutgoingAttachment, ...],
    service: tuple[str, str],
    tamper: Tamper = Tamper.NONE,
) -> dict[str, Any]:
    data_hash = crypto.sha512_hex(xml)
    if tamper is Tamper.BAD_HASH:
        data_hash = crypto.sha512_hex(xml + b"tampered")
    metadata: dict[str, Any] = {
        "$schema": METADATA_SCHEMA_ID,
        "publicServiceType": {"identifier": service[0], "name": service[1]},
        "contentStructure": {
            "data": {
                "submissionSchema": {
                    "schemaUri": XOEV_SCHEMA_URI,
                    "mimeType": "application/json"
                    if tamper is Tamper.JSON_DATA
                    else "application/xml",
                },
                "hash": {"type": "sha512", "content": data_hash},
            },
            "attachments": [
                {
                    "attachmentId": a.attachment_id,
                    "hash": {"type": "sha512", "content": crypto.sha512_hex(a.content)},
                    "purpose": a.purpose,
                    "mimeType": a.media_type,
                    **({"filename": a.filename} if a.filename else {}),
                }
                for a in attachments
            ],
        },
    }
    if tamper is Tamper.BAD_METADATA:
        metadata["publicServiceType"]["identifier"] = "not a urn"
    return metadata


async def _token(client: httpx.AsyncClient, url: str, client_id: str, secret: str) -> str:
    response = await client.post(
        url,
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    return str(_ok(response).json()["access_token"])


def _ok(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        raise httpx.HTTPStatusError(
            f"{response.request.method} {response.request.url}: "
            f"{response.status_code} {response.text[:300]}",
            request=response.request,
            response=response,
        )
    return response
