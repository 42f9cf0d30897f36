"""One FIT-Connect submission, end to end: fetch, verify, decrypt, check, hand over, answer.

Order: submission + attachments + event log are fetched; every SET of the event log is
verified (delivery-service SETs with its JWKS, destination SETs with the destination's key);
the ``submit-submission`` event for this submission gives the authentication tags; each JWE's
tag (its last segment) must equal the tag there; metadata is decrypted and validated against
the shipped metadata schema 1.0.0; data and attachments are decrypted and their SHA-512 hashes
compared with the metadata; the XÖV data goes to the sink; only after the sink returned (the
accept transaction committed) the PS512-signed ``accept-submission`` SET is posted.

Stricter readings taken where WORKFLOW.md says **unconfirmed**:

- The metadata's ``$schema``, when present, must be the metadata schema 1.0.0 (the one we
  ship); another version is rejected (``unsupported-schema``). Without ``$schema`` 1.0.0 is
  assumed, as the reference SDK does.
- The metadata's attachment list must equal the submission's ``attachments`` (no extra, none
  missing), and every attachment id must appear once (``attachments-mismatch``).
- The event log must verify completely, hold exactly one ``submit-submission`` event for this
  submission, and that event must carry tags for metadata, data and every attachment;
  otherwise the submission is rejected (``invalid-event-log``/``authentication-tag-missing``).
- The accept SET always carries the ``authenticationTags`` (not the older empty payload).
- No "accept with problems": a submission is accepted cleanly or rejected.
- Certificate chains (``x5c``) of the delivery service's keys are not validated (FITKO's
  details are unconfirmed); keys come over TLS from the configured API host.

What is never a rejection: our own outage (sink ``Unavailable``, any unexpected error in the
sink, the Submission API unreachable or 5xx). Then nothing is posted and the submission stays
in the pickup list for the next round. A 409 on posting our answer means an answer is
already on the case: that counts as done if it is the same answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema
from joserfc.jwk import RSAKey

from gateway.errors import GatewayError
from gateway.sources.base import (
    IncomingAttachment,
    IncomingSubmission,
    SubmissionSink,
    is_rejection,
)
from gateway.sources.fitconnect import crypto
from gateway.sources.fitconnect.client import (
    ApiConflict,
    ApiNotFound,
    Submission,
    SubmissionApiClient,
)
from gateway.sources.fitconnect.problems import Kind, RejectProblem, SubmissionRejected, from_intake
from gateway.sources.fitconnect.settings import DestinationKeys, DestinationSettings
from gateway.telemetry.logs import fields
from gateway.telemetry.metrics import SUBMISSIONS_REJECTED

log = logging.getLogger(__name__)

SOURCE_NAME = "fit-connect"
EVENTS = "https://schema.fitko.de/fit-connect/events/"
SUBMIT_EVENT = EVENTS + "submit-submission"
ACCEPT_EVENT = EVENTS + "accept-submission"
REJECT_EVENT = EVENTS + "reject-submission"
SET_PAYLOAD_SCHEMA = "https://schema.fitko.de/fit-connect/set-payload/1.0.0/set-payload.schema.json"
METADATA_SCHEMA_ID = "https://schema.fitko.de/fit-connect/metadata/1.0.0/metadata.schema.json"
XML = "application/xml"


class Outcome(Enum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DEFERRED = "deferred"  # our outage: nothing posted, fetched again later
    DONE_BEFORE = "done-before"  # an answer of ours is already on the case


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    submission_id: str
    gateway_id: str | None = None
    problems: tuple[RejectProblem, ...] = ()


@dataclass(frozen=True)
class Tags:
    metadata: str
    data: str | None
    attachments: Mapping[str, str]

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"metadata": self.metadata}
        if self.data is not None:
            out["data"] = self.data
        out["attachments"] = dict(self.attachments)
        return out


@dataclass(frozen=True)
class Opened:
    """A submission that passed every transport check, decrypted."""

    xml: bytes
    attachments: tuple[IncomingAttachment, ...]
    tags: Tags


@lru_cache(maxsize=1)
def metadata_validator() -> jsonschema.protocols.Validator:
    text = resources.files(__package__).joinpath("metadata.schema.v1.0.0.json").read_text("utf-8")
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator: jsonschema.protocols.Validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return validator


class Subscriber:
    """Processes submissions of one destination."""

    def __init__(
        self,
        settings: DestinationSettings,
        keys: DestinationKeys,
        client: SubmissionApiClient,
        sink: SubmissionSink,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.client = client
        self.sink = sink

    @property
    def destination_id(self) -> str:
        return self.settings.destination_id

    async def process(self, submission_id: str) -> Result:
        """Raises ``ApiUnavailable`` when the Submission API cannot be reached (retry later)."""
        try:
            submission = await self.client.submission(submission_id)
        except ApiNotFound:
            # not (any more) in state submitted/forwarded: someone answered it already
            return Result(Outcome.DONE_BEFORE, submission_id)
        log.info(
            "FIT-Connect submission fetched",
            extra=fields(
                event="fitconnect.fetched",
                fit_submission_id=submission_id,
                case_id=submission.case_id,
                destination_id=self.destination_id,
            ),
        )
        if submission.destination_id != self.destination_id:
            log.warning(
                "submission %s is for destination %s", submission_id, submission.destination_id
            )
            return Result(Outcome.DEFERRED, submission_id)
        events = await self.client.events(submission.case_id)
        try:
            verified = await self._verify_log(events, submission)
            done = _our_answer(verified, submission.submission_id, self.destination_id)
            if done is not None:
                return Result(Outcome.DONE_BEFORE, submission_id)
            tags = _submit_tags(verified, submission)
            encrypted = await self._download(submission)
            opened = await asyncio.to_thread(self._open, submission, encrypted, tags)
        except SubmissionRejected as rejected:
            return await self._reject(submission, rejected.problem)
        return await self._hand_over(submission, opened)

    # --- steps ----------------------------------------------------------------------------

    async def _verify_log(
        self, events: list[str], submission: Submission
    ) -> list[crypto.SecurityEvent]:
        verified = []
        for token in events:
            try:
                verified.append(await self._verify_set(token))
            except crypto.SignatureInvalid as exc:
                raise SubmissionRejected(
                    Kind.EVENT_LOG,
                    f"a SET of the event log fails verification: {exc}",
                    "submission",
                ) from exc
        for event in verified:
            if event.claims.get("txn") != f"case:{submission.case_id}":
                raise SubmissionRejected(
                    Kind.EVENT_LOG,
                    f"SET {event.claims.get('jti')} belongs to another case",
                    "submission",
                )
        return verified

    async def _verify_set(self, token: str) -> crypto.SecurityEvent:
        kid = crypto.set_kid(token)
        issuer = _unverified_issuer(token)
        if _is_uuid(issuer):
            key = await self.client.destination_key(issuer, kid)
            keys: dict[str, RSAKey] = {kid: key} if key is not None else {}
            return crypto.verify_set(token, keys)
        keys = await self.client.service_keys()
        if kid not in keys:
            keys = await self.client.service_keys(refresh=True)  # rotated key: fetch once more
        event = crypto.verify_set(token, keys)
        return event

    async def _download(self, submission: Submission) -> dict[str, str]:
        encrypted = {}
        for attachment_id in submission.attachments:
            encrypted[attachment_id] = await self.client.attachment(
                submission.submission_id, attachment_id
            )
        return encrypted

    def _open(self, submission: Submission, attachments: Mapping[str, str], tags: Tags) -> Opened:
        """All checks on the encrypted parts (CPU-bound: runs in a worker thread)."""
        if submission.encrypted_metadata is None:
            raise SubmissionRejected(
                Kind.MISSING_DATA, "the submission has no metadata", "metadata"
            )
        _check_tag(submission.encrypted_metadata, tags.metadata, "metadata")
        if submission.encrypted_data is not None:
            _check_tag(submission.encrypted_data, tags.data, "data")
        for attachment_id, token in attachments.items():
            _check_tag(token, tags.attachments.get(attachment_id), f"attachment:{attachment_id}")

        metadata = self._metadata(submission.encrypted_metadata)
        structure = metadata["contentStructure"]
        data_entry = structure.get("data")
        if data_entry is None or submission.encrypted_data is None:
            raise SubmissionRejected(
                Kind.MISSING_DATA,
                "the submission carries no XÖV data (contentStructure.data and encryptedData)",
                "data",
            )
        mime = data_entry["submissionSchema"]["mimeType"]
        if mime != XML:
            raise SubmissionRejected(
                Kind.DATA_FORMAT, f"data has mime type {mime}, this destination takes {XML}", "data"
            )
        data = self._decrypt(submission.encrypted_data, "data")
        _check_hash(data, data_entry["hash"], "data")

        listed = [a["attachmentId"] for a in structure["attachments"]]
        if len(set(listed)) != len(listed) or set(listed) != set(submission.attachments):
            raise SubmissionRejected(
                Kind.ATTACHMENTS,
                f"metadata lists attachments {sorted(listed)}, the submission has "
                f"{sorted(submission.attachments)}",
                "metadata",
            )
        incoming = []
        for entry in structure["attachments"]:
            attachment_id = entry["attachmentId"]
            instance = f"attachment:{attachment_id}"
            content = self._decrypt(attachments[attachment_id], instance)
            _check_hash(content, entry["hash"], instance)
            incoming.append(
                IncomingAttachment(
                    name=entry.get("filename") or attachment_id,
                    media_type=entry["mimeType"],
                    sha256=hashlib.sha256(content).hexdigest(),
                    size=len(content),
                    content=content,
                )
            )
        return Opened(data, tuple(incoming), tags)

    def _metadata(self, token: str) -> dict[str, Any]:
        plaintext = self._decrypt(token, "metadata")
        try:
            metadata = json.loads(plaintext)
        except ValueError as exc:
            raise SubmissionRejected(
                Kind.SYNTAX, f"metadata is not JSON: {exc}", "metadata"
            ) from exc
        if not isinstance(metadata, dict):
            raise SubmissionRejected(Kind.SYNTAX, "metadata is not a JSON object", "metadata")
        declared = metadata.get("$schema", METADATA_SCHEMA_ID)
        if declared != METADATA_SCHEMA_ID:
            raise SubmissionRejected(
                Kind.UNSUPPORTED_SCHEMA,
                f"metadata schema {declared} is not supported (only {METADATA_SCHEMA_ID})",
                "metadata",
            )
        errors = sorted(metadata_validator().iter_errors(metadata), key=lambda e: list(e.path))
        if errors:
            detail = "; ".join(
                f"/{'/'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in errors[:20]
            )
            raise SubmissionRejected(Kind.SCHEMA, detail, "metadata")
        return metadata

    def _decrypt(self, token: str, instance: str) -> bytes:
        try:
            return self.keys.decryption.decrypt(token).plaintext
        except crypto.DecryptionFailed as exc:
            raise SubmissionRejected(Kind.ENCRYPTION, str(exc), instance) from exc

    async def _hand_over(self, submission: Submission, opened: Opened) -> Result:
        incoming = IncomingSubmission(
            source=SOURCE_NAME,
            xml=opened.xml,
            sender=f"{SOURCE_NAME}:{self.destination_id}",
            attachments=opened.attachments,
            transport_refs={
                "submission_id": submission.submission_id,
                "case_id": submission.case_id,
                "destination_id": submission.destination_id,
                "service": submission.service_type.identifier,
            },
            recipient=self.settings.recipient,
        )
        try:
            accepted = await self.sink.accept(incoming)
        except Exception as exc:
            if is_rejection(exc):
                assert isinstance(exc, GatewayError)
                return await self._reject(submission, from_intake(exc))
            log.warning(
                "submission %s left with FIT-Connect for later: %s: %s",
                submission.submission_id,
                type(exc).__name__,
                exc,
            )
            return Result(Outcome.DEFERRED, submission.submission_id)
        payload = {"authenticationTags": opened.tags.as_json()}
        posted = await self._answer(submission, ACCEPT_EVENT, payload)
        outcome = Outcome.ACCEPTED if posted else Outcome.DONE_BEFORE
        log.info(
            "FIT-Connect submission accepted",
            extra=fields(
                event="fitconnect.accept",
                submission_id=accepted.submission_id,
                fit_submission_id=submission.submission_id,
                case_id=submission.case_id,
                destination_id=self.destination_id,
                answered=posted,
            ),
        )
        return Result(outcome, submission.submission_id, accepted.submission_id)

    async def _reject(self, submission: Submission, problem: RejectProblem) -> Result:
        posted = await self._answer(submission, REJECT_EVENT, {"problems": [problem.as_json()]})
        outcome = Outcome.REJECTED if posted else Outcome.DONE_BEFORE
        slug = problem.type.rsplit("/", 1)[-1]
        SUBMISSIONS_REJECTED.labels("fit-connect", slug).inc()
        # The problem type and where, not the detail: validation messages quote values.
        log.info(
            "FIT-Connect submission rejected: %s",
            slug,
            extra=fields(
                event="fitconnect.reject",
                problem=slug,
                instance=problem.instance,
                fit_submission_id=submission.submission_id,
                case_id=submission.case_id,
                destination_id=self.destination_id,
                answered=posted,
            ),
        )
        return Result(outcome, submission.submission_id, problems=(problem,))

    async def _answer(self, submission: Submission, event: str, payload: dict[str, Any]) -> bool:
        """Post our SET; False if the same answer was already on the case (409)."""
        claims = {
            "$schema": SET_PAYLOAD_SCHEMA,
            "jti": str(uuid.uuid4()),
            "iss": self.destination_id,
            "iat": int(time.time()),
            "sub": f"submission:{submission.submission_id}",
            "txn": f"case:{submission.case_id}",
            "events": {event: payload},
        }
        token = crypto.sign_set(claims, self.keys.signing, kid=self.keys.signing_kid)
        try:
            await self.client.post_event(submission.case_id, token)
        except ApiConflict:
            events = await self.client.events(submission.case_id)
            verified = [await self._verify_set(t) for t in events]
            if _our_answer(verified, submission.submission_id, self.destination_id) == event:
                return False
            raise
        return True


def _check_tag(token: str, expected: str | None, instance: str) -> None:
    if expected is None:
        raise SubmissionRejected(
            Kind.TAG_MISSING, "the submit-submission event has no tag for it", instance
        )
    try:
        actual = crypto.auth_tag(token)
    except crypto.DecryptionFailed as exc:
        raise SubmissionRejected(Kind.ENCRYPTION, str(exc), instance) from exc
    if actual != expected:
        raise SubmissionRejected(
            Kind.TAG_INCORRECT,
            "the JWE's authentication tag differs from the one in the submit-submission event",
            instance,
        )


def _check_hash(content: bytes, declared: Mapping[str, str], instance: str) -> None:
    if declared.get("type") != "sha512":
        raise SubmissionRejected(
            Kind.HASH, f"hash type {declared.get('type')} unsupported", instance
        )
    if crypto.sha512_hex(content) != declared.get("content"):
        raise SubmissionRejected(Kind.HASH, "SHA-512 of the decrypted content differs", instance)


def _submit_tags(events: list[crypto.SecurityEvent], submission: Submission) -> Tags:
    subject = f"submission:{submission.submission_id}"
    submits = [e for e in events if e.event == SUBMIT_EVENT and e.claims.get("sub") == subject]
    if len(submits) != 1:
        raise SubmissionRejected(
            Kind.EVENT_LOG,
            f"the event log holds {len(submits)} submit-submission events for this submission",
            "submission",
        )
    event = submits[0]
    if _is_uuid(event.issuer):
        raise SubmissionRejected(
            Kind.EVENT_LOG, "submit-submission was not issued by the delivery service", "submission"
        )
    raw = event.payload.get("authenticationTags")
    if not isinstance(raw, dict) or not isinstance(raw.get("metadata"), str):
        raise SubmissionRejected(
            Kind.TAG_MISSING, "submit-submission carries no authentication tags", "submission"
        )
    data = raw.get("data")
    attachments = raw.get("attachments") or {}
    if not isinstance(attachments, dict) or (data is not None and not isinstance(data, str)):
        raise SubmissionRejected(Kind.TAG_MISSING, "malformed authentication tags", "submission")
    return Tags(raw["metadata"], data, {str(k): str(v) for k, v in attachments.items()})


def _our_answer(
    events: list[crypto.SecurityEvent], submission_id: str, destination_id: str
) -> str | None:
    """The accept/reject event this destination already put on the case, if any."""
    subject = f"submission:{submission_id}"
    for event in events:
        if (
            event.event in (ACCEPT_EVENT, REJECT_EVENT)
            and event.claims.get("sub") == subject
            and event.issuer == destination_id
        ):
            return event.event
    return None


def _unverified_issuer(token: str) -> str:
    # Only to choose the key; the claims are trusted after verification.
    try:
        claims = json.loads(crypto.jws_b64decode(token.split(".")[1]))
    except (ValueError, IndexError) as exc:
        raise crypto.SignatureInvalid("SET payload unreadable") from exc
    return str(claims.get("iss", "")) if isinstance(claims, dict) else ""


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
