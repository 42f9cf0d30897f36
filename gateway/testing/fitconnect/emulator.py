"""A local FIT-Connect Submission API (v1.1.3) for tests, demos and operators' smoke tests.

In memory, one process, but faithful where a subscriber can tell: OAuth client credentials,
destinations and their keys, the sender's create/upload/submit, the pickup list, downloads,
the case event log with PS512-signed SETs (``iss`` = the emulator's base URL, keys at
``/.well-known/jwks.json``), HMAC-signed callbacks, and the subscriber's accept/reject SETs,
verified with the destination's registered key (422 when malformed or wrongly signed, 409 on
an invalid state transition).

Fault injection (also over HTTP under ``/_emulator/``, for the CLI):
``emulator.faults.fail("get-submission", status=503, times=2)`` answers the named operations
(the OpenAPI ``operationId``) with that status; ``emulator.faults.hang("send-case-event")``
leaves its requests unanswered until the client gives up or the fault is cleared, then
answers 503 without effect (a gateway killed mid-request);
``emulator.tamper_tags(submission_id)`` makes the next ``submit-submission`` SET carry a
wrong authentication tag for the metadata.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.errors import ConfigError
from gateway.sources.fitconnect import crypto

log = logging.getLogger(__name__)

EVENTS = "https://schema.fitko.de/fit-connect/events/"
SET_SCHEMA = "https://schema.fitko.de/fit-connect/set-payload/1.0.0/set-payload.schema.json"
API_PROBLEMS = "https://schema.fitko.de/fit-connect/submission-api/problems/"
NEW_SUBMISSIONS = "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-submissions"
TOKEN_LIFETIME = 1800
VERSION = {"major": 1, "minor": 1, "patch": 3}

Handler = Callable[[Request], Awaitable[Response]]


HANG = 0  # a planned "status" that means: never answer (see ``Faults.hang``)


class Faults:
    """Answers chosen operations with an error status, ``times`` times (None: until cleared)."""

    def __init__(self) -> None:
        self._plan: dict[str, tuple[int, int | None]] = {}
        self._lock = threading.Lock()

    def fail(self, operation: str, *, status: int = 503, times: int | None = None) -> None:
        with self._lock:
            self._plan[operation] = (status, times)

    def hang(self, operation: str) -> None:
        """Requests to ``operation`` wait unanswered until the client disconnects or the
        fault is cleared, and then change nothing (answered 503)."""
        self.fail(operation, status=HANG)

    def active(self, operation: str) -> bool:
        with self._lock:
            return operation in self._plan

    def clear(self) -> None:
        with self._lock:
            self._plan.clear()

    def take(self, operation: str) -> int | None:
        with self._lock:
            planned = self._plan.get(operation)
            if planned is None:
                return None
            status, times = planned
            if times is not None:
                if times <= 1:
                    del self._plan[operation]
                else:
                    self._plan[operation] = (status, times - 1)
            return status


@dataclass
class Client:
    client_id: str
    secret: str
    destination_id: str | None  # a subscriber client; None: a sender


@dataclass
class Destination:
    destination_id: str
    encryption_key: dict[str, Any]  # public JWK, key_ops wrapKey
    signing_key: dict[str, Any]  # public JWK, key_ops verify
    services: list[dict[str, Any]]
    status: str = "active"
    callback_url: str | None = None
    callback_secret: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "destinationId": self.destination_id,
            "status": self.status,
            "encryptionKid": self.encryption_key["kid"],
            "metadataVersions": ["1.0.0"],
            "services": self.services,
        }


@dataclass
class StoredSubmission:
    submission_id: str
    case_id: str
    destination_id: str
    service_type: dict[str, str]
    announced: list[str]
    attachments: dict[str, str] = field(default_factory=dict)
    encrypted_metadata: str | None = None
    encrypted_data: str | None = None
    state: str = "created"  # created -> submitted [-> forwarded] -> accepted | rejected
    tags: dict[str, Any] | None = None

    def reduced(self) -> dict[str, Any]:
        return {
            "destinationId": self.destination_id,
            "submissionId": self.submission_id,
            "caseId": self.case_id,
            "attachments": list(self.announced),
            "serviceType": self.service_type,
        }


class EmulatorError(Exception):
    def __init__(self, status: int, title: str, detail: str, slug: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.slug = slug


class Emulator:
    """The emulated delivery service (Zustelldienst); ``app`` is its ASGI application."""

    def __init__(self, base_url: str, *, service_key: RSAKey | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.service_key = service_key or RSAKey.generate_key(4096, private=True)
        self.service_kid = str(uuid.uuid4())
        self.faults = Faults()
        self.clients: dict[str, Client] = {}
        self.tokens: dict[str, tuple[Client, float]] = {}
        self.destinations: dict[str, Destination] = {}
        self.submissions: dict[str, StoredSubmission] = {}
        self.cases: dict[str, list[str]] = {}
        self.requests: deque[tuple[str, str]] = deque(maxlen=100_000)
        self._tampered: set[str] = set()
        # The spec lists only ``submitted`` for pickup and allows downloads in ``submitted`` and
        # ``forwarded``; whether a download moves a submission to ``forwarded`` (and so off
        # the pickup list) is unconfirmed. True models that stricter behaviour.
        self.forward_on_download = False
        self._lock = threading.Lock()
        self._callbacks: set[asyncio.Task[None]] = set()
        self.app = Starlette(routes=self._routes())

    # --- set-up (library API) -------------------------------------------------------------

    def add_client(self, client_id: str, secret: str, *, destination_id: str | None = None) -> None:
        self.clients[client_id] = Client(client_id, secret, destination_id)

    def add_destination(
        self,
        *,
        encryption_key: dict[str, Any],
        signing_key: dict[str, Any],
        destination_id: str | None = None,
        region: str = "DE",
        service: str = "urn:de:fim:leika:leistung:99010003001006",
        callback_url: str | None = None,
        callback_secret: str | None = None,
    ) -> Destination:
        """Register a destination from its two public JWKs (as the Self-Service-Portal would)."""
        for key, op, alg in (
            (encryption_key, "wrapKey", "RSA-OAEP-256"),
            (signing_key, "verify", "PS512"),
        ):
            if "d" in key:
                raise ConfigError("register public keys only")
            if key.get("key_ops") != [op] or key.get("alg") != alg or not key.get("kid"):
                raise ConfigError(
                    f"key {key.get('kid')!r} needs kid, key_ops [{op!r}] and alg {alg}"
                )
        enc = dict(encryption_key)
        enc.setdefault("x5c", [_self_signed(enc)])
        sig = dict(signing_key)
        sig.setdefault("x5c", [_self_signed(sig)])
        destination = Destination(
            destination_id or str(uuid.uuid4()),
            enc,
            sig,
            [
                {
                    "identifier": service,
                    "regions": [region],
                    "submissionSchemas": [
                        {
                            "schemaUri": "urn:xoev-de:xleitstelle:standard:xbau",
                            "mimeType": "application/xml",
                        }
                    ],
                }
            ],
            callback_url=callback_url,
            callback_secret=callback_secret,
        )
        self.destinations[destination.destination_id] = destination
        return destination

    def tamper_tags(self, submission_id: str) -> None:
        """The submit-submission SET of this submission will carry a wrong metadata tag."""
        self._tampered.add(submission_id)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self._service_public()]}

    def events_of(self, case_id: str) -> list[dict[str, Any]]:
        """The case's event log, decoded (for tests)."""
        return [
            json.loads(crypto.jws_b64decode(t.split(".")[1])) for t in self.cases.get(case_id, [])
        ]

    # --- routes ---------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        def route(path: str, op: str, handler: Handler, method: str) -> Route:
            async def endpoint(request: Request) -> Response:
                self.requests.append((request.method, request.url.path))
                status = self.faults.take(op)
                if status == HANG:
                    # The body stays unread: this request never takes effect. Polled: one of
                    # the two conditions is the client's socket, no event to wait on.
                    while self.faults.active(op) and not await request.is_disconnected():  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
                    status = 503
                if status is not None:
                    return _problem(
                        status, "Injected fault", f"{op} answers {status} (fault injection)"
                    )
                try:
                    return await handler(request)
                except EmulatorError as exc:
                    return _problem(exc.status, exc.title, exc.detail, exc.slug)

            return Route(path, endpoint, methods=[method], name=op)

        return [
            route("/token", "token", self._token, "POST"),
            route("/v1/info", "get-info", self._info, "GET"),
            route("/.well-known/jwks.json", "get-jwks.json", self._jwks, "GET"),
            route(
                "/v1/destinations/{destinationId}", "get-destination-info", self._destination, "GET"
            ),
            route(
                "/v1/destinations/{destinationId}/keys/{keyId}",
                "get-destination-key",
                self._key,
                "GET",
            ),
            route("/v1/submissions", "get-submissions-for-pickup", self._pickup, "GET"),
            route("/v1/submissions", "create-submission", self._create, "POST"),
            route("/v1/submissions/{submissionId}", "get-submission", self._get_submission, "GET"),
            route("/v1/submissions/{submissionId}", "submit-submission", self._submit, "PUT"),
            route(
                "/v1/submissions/{submissionId}/attachments/{attachmentId}",
                "get-submission-attachment",
                self._get_attachment,
                "GET",
            ),
            route(
                "/v1/submissions/{submissionId}/attachments/{attachmentId}",
                "add-submission-attachment",
                self._put_attachment,
                "PUT",
            ),
            route("/v1/cases/{caseId}/events", "get-case-events", self._get_events, "GET"),
            route("/v1/cases/{caseId}/events", "send-case-event", self._post_event, "POST"),
            Route("/_emulator/faults", self._admin_faults, methods=["POST", "DELETE"]),
            Route("/_emulator/tamper-tags/{submissionId}", self._admin_tamper, methods=["POST"]),
        ]

    # --- auth -----------------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        form = await request.form()
        client = self.clients.get(str(form.get("client_id", "")))
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if client is None or not secrets.compare_digest(
            client.secret, str(form.get("client_secret", ""))
        ):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        token = secrets.token_urlsafe(32)
        now = time.time()
        for stale in [t for t, (_, expires) in self.tokens.items() if expires < now]:
            del self.tokens[stale]
        self.tokens[token] = (client, now + TOKEN_LIFETIME)
        scope = (
            f"subscribe:destination:{client.destination_id}"
            if client.destination_id
            else "send:region:DE"
        )
        return JSONResponse(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME,
                "scope": scope,
            }
        )

    def _client(self, request: Request) -> Client:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        entry = self.tokens.get(token)
        if entry is None or entry[1] < time.time():
            raise EmulatorError(401, "Unauthorized", "a valid bearer token is required")
        return entry[0]

    def _subscriber(self, request: Request, destination_id: str) -> Client:
        client = self._client(request)
        if client.destination_id != destination_id:
            raise EmulatorError(
                403, "Forbidden", f"no scope subscribe:destination:{destination_id}"
            )
        return client

    def _sender(self, request: Request) -> Client:
        client = self._client(request)
        if client.destination_id is not None:
            raise EmulatorError(403, "Forbidden", "this client may not send submissions")
        return client

    # --- technical ------------------------------------------------------------------------

    async def _info(self, request: Request) -> Response:
        return JSONResponse({"version": VERSION})

    async def _jwks(self, request: Request) -> Response:
        return JSONResponse(self.jwks())

    # --- destinations ---------------------------------------------------------------------

    def _get_destination(self, destination_id: str) -> Destination:
        destination = self.destinations.get(destination_id)
        if destination is None:
            raise EmulatorError(
                404, "Not Found", f"destination {destination_id}", "destination-not-found"
            )
        return destination

    async def _destination(self, request: Request) -> Response:
        self._client(request)
        destination = self._get_destination(request.path_params["destinationId"])
        return JSONResponse(destination.public(), headers={"Cache-Control": "no-cache"})

    async def _key(self, request: Request) -> Response:
        destination = self._get_destination(request.path_params["destinationId"])
        kid = request.path_params["keyId"]
        for key in (destination.encryption_key, destination.signing_key):
            if key["kid"] == kid:
                return JSONResponse(key, headers={"Cache-Control": "no-cache"})
        raise EmulatorError(404, "Not Found", f"key {kid}")

    # --- sender side ----------------------------------------------------------------------

    async def _create(self, request: Request) -> Response:
        self._sender(request)
        body = await _json_body(request)
        destination_id = body.get("destinationId")
        announced = body.get("announcedAttachments")
        service = body.get("serviceType")
        if (
            not isinstance(destination_id, str)
            or not isinstance(announced, list)
            or not all(_is_uuid(a) for a in announced)
            or not isinstance(service, dict)
            or not isinstance(service.get("identifier"), str)
            or not isinstance(service.get("name"), str)
        ):
            raise EmulatorError(
                400, "Bad Request", "destinationId, announcedAttachments, serviceType needed"
            )
        destination = self._get_destination(destination_id)
        if destination.status != "active":
            raise EmulatorError(
                422,
                "Unprocessable Entity",
                "destination is not active",
                "destination-state-invalid",
            )
        case_id = body.get("caseId") or str(uuid.uuid4())
        submission = StoredSubmission(
            str(uuid.uuid4()),
            str(case_id),
            destination_id,
            {"name": service["name"], "identifier": service["identifier"]},
            [str(a) for a in announced],
        )
        with self._lock:
            self.submissions[submission.submission_id] = submission
            self._log_service_event(submission, "create-submission", {})
        return JSONResponse(
            {
                "destinationId": destination_id,
                "submissionId": submission.submission_id,
                "caseId": submission.case_id,
            },
            status_code=201,
        )

    def _sender_submission(self, request: Request) -> StoredSubmission:
        self._sender(request)
        submission = self.submissions.get(request.path_params["submissionId"])
        if submission is None:
            raise EmulatorError(404, "Not Found", "submission not found", "submission-not-found")
        return submission

    async def _put_attachment(self, request: Request) -> Response:
        submission = self._sender_submission(request)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/jose":
            raise EmulatorError(415, "Unsupported Media Type", "attachments are application/jose")
        attachment_id = request.path_params["attachmentId"]
        if attachment_id not in submission.announced:
            raise EmulatorError(
                422, "Unprocessable Entity", f"attachment {attachment_id} was not announced"
            )
        if submission.state != "created":
            raise EmulatorError(422, "Unprocessable Entity", "submission was already submitted")
        body = (await request.body()).decode("ascii", "replace").strip()
        if not body or not _is_compact(body):
            raise EmulatorError(400, "Bad Request", "body is no JOSE compact serialization")
        submission.attachments[attachment_id] = body
        return Response(status_code=204)

    async def _submit(self, request: Request) -> Response:
        submission = self._sender_submission(request)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise EmulatorError(415, "Unsupported Media Type", "application/json expected")
        body = await _json_body(request)
        metadata = body.get("encryptedMetadata")
        data = body.get("encryptedData")
        if not isinstance(metadata, str) or not _is_compact(metadata):
            raise EmulatorError(400, "Bad Request", "encryptedMetadata is required")
        if data is not None and (not isinstance(data, str) or not _is_compact(data)):
            raise EmulatorError(400, "Bad Request", "encryptedData is malformed")
        missing = [a for a in submission.announced if a not in submission.attachments]
        if missing:
            raise EmulatorError(
                422, "Unprocessable Entity", f"announced attachments missing: {missing}"
            )
        if submission.state != "created":
            raise EmulatorError(422, "Unprocessable Entity", "submission was already submitted")
        submission.encrypted_metadata = metadata
        submission.encrypted_data = data
        tags: dict[str, Any] = {
            "metadata": _tag(metadata),
            "attachments": {a: _tag(t) for a, t in submission.attachments.items()},
        }
        if data is not None:
            tags["data"] = _tag(data)
        if submission.submission_id in self._tampered:
            tags["metadata"] = _flip(tags["metadata"])
        submission.tags = tags
        with self._lock:
            submission.state = "submitted"
            self._log_service_event(submission, "submit-submission", {"authenticationTags": tags})
        destination = self.destinations[submission.destination_id]
        task = None
        if destination.callback_url and destination.callback_secret:
            task = BackgroundTask(self._send_callback, destination, submission)
        return JSONResponse(submission.reduced(), status_code=202, background=task)

    async def _send_callback(self, destination: Destination, submission: StoredSubmission) -> None:
        assert destination.callback_url and destination.callback_secret
        body = json.dumps(
            {
                "type": NEW_SUBMISSIONS,
                "submissionIds": [submission.submission_id],
                "submissions": [
                    {
                        "destinationId": destination.destination_id,
                        "submissionId": submission.submission_id,
                        "caseId": submission.case_id,
                    }
                ],
            },
            separators=(",", ":"),
        ).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "callback-authentication": crypto.callback_signature(
                destination.callback_secret, timestamp, body
            ),
            "callback-timestamp": timestamp,
        }
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                await http.post(destination.callback_url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("callback to %s failed: %s", destination.callback_url, exc)

    # --- subscriber side ------------------------------------------------------------------

    async def _pickup(self, request: Request) -> Response:
        client = self._client(request)
        if client.destination_id is None:
            raise EmulatorError(403, "Forbidden", "only subscribers list submissions")
        wanted = request.query_params.get("destinationId")
        if wanted is not None and wanted != client.destination_id:
            raise EmulatorError(403, "Forbidden", f"no scope subscribe:destination:{wanted}")
        limit, offset = _paging(request)
        ready = [
            s
            for s in self.submissions.values()
            if s.destination_id == client.destination_id and s.state == "submitted"
        ]
        page = ready[offset : offset + limit]
        return JSONResponse(
            {
                "count": len(page),
                "offset": offset,
                "totalCount": len(ready),
                "submissions": [
                    {
                        "destinationId": s.destination_id,
                        "submissionId": s.submission_id,
                        "caseId": s.case_id,
                    }
                    for s in page
                ],
            }
        )

    def _readable(self, request: Request) -> StoredSubmission:
        submission = self.submissions.get(request.path_params["submissionId"])
        if submission is None:
            self._client(request)
            raise EmulatorError(404, "Not Found", "submission not found", "submission-not-found")
        self._subscriber(request, submission.destination_id)
        if submission.state not in ("submitted", "forwarded"):
            raise EmulatorError(
                404, "Not Found", f"submission is {submission.state}", "submission-not-found"
            )
        return submission

    async def _get_submission(self, request: Request) -> Response:
        submission = self._readable(request)
        if self.forward_on_download:
            submission.state = "forwarded"
        body = submission.reduced()
        body["encryptedMetadata"] = submission.encrypted_metadata
        if submission.encrypted_data is not None:
            body["encryptedData"] = submission.encrypted_data
        return JSONResponse(body)

    async def _get_attachment(self, request: Request) -> Response:
        submission = self._readable(request)
        attachment = submission.attachments.get(request.path_params["attachmentId"])
        if attachment is None:
            raise EmulatorError(404, "Not Found", "attachment not found")
        return Response(attachment, media_type="application/jose")

    def _case(self, request: Request) -> tuple[str, list[StoredSubmission]]:
        case_id = request.path_params["caseId"]
        client = self._client(request)
        members = [s for s in self.submissions.values() if s.case_id == case_id]
        if not members:
            raise EmulatorError(404, "Not Found", "case not found")
        if client.destination_id is not None and all(
            s.destination_id != client.destination_id for s in members
        ):
            raise EmulatorError(403, "Forbidden", "case of another destination")
        return case_id, members

    async def _get_events(self, request: Request) -> Response:
        case_id, _ = self._case(request)
        limit, offset = _paging(request)
        log_ = self.cases.get(case_id, [])
        page = log_[offset : offset + limit]
        return JSONResponse(
            {"count": len(page), "offset": offset, "totalCount": len(log_), "eventLog": page}
        )

    async def _post_event(self, request: Request) -> Response:
        case_id, members = self._case(request)
        client = self._client(request)
        if client.destination_id is None:
            raise EmulatorError(403, "Forbidden", "only subscribers post events")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/jose":
            raise EmulatorError(415, "Unsupported Media Type", "a SET is application/jose")
        token = (await request.body()).decode("ascii", "replace").strip()
        destination = self.destinations[client.destination_id]
        verify = crypto.rsa_key(destination.signing_key, purpose="verify")
        try:
            event = crypto.verify_set(token, {destination.signing_key["kid"]: verify})
        except crypto.SignatureInvalid as exc:
            raise EmulatorError(422, "Unprocessable Entity", f"SET rejected: {exc}") from exc
        claims = event.claims
        subject = str(claims.get("sub", ""))
        submission = next((s for s in members if f"submission:{s.submission_id}" == subject), None)
        problems = []
        if submission is None or submission.destination_id != destination.destination_id:
            problems.append(f"sub {subject!r} is no submission of this case and destination")
        if claims.get("iss") != destination.destination_id:
            problems.append("iss must be the destination id")
        if claims.get("txn") != f"case:{case_id}":
            problems.append("txn must be case:<caseId>")
        if claims.get("$schema") != SET_SCHEMA:
            problems.append("$schema must be the SET payload schema 1.0.0")
        accept, reject = EVENTS + "accept-submission", EVENTS + "reject-submission"
        if event.event not in (accept, reject):
            problems.append(f"event {event.event} cannot be sent by a subscriber")
        if event.event == reject and not (
            isinstance(event.payload.get("problems"), list) and event.payload["problems"]
        ):
            problems.append("reject-submission needs problems")
        if (
            event.event == accept
            and submission is not None
            and event.payload.get("authenticationTags") != submission.tags
        ):
            problems.append("accept-submission must carry the submission's authentication tags")
        if problems:
            raise EmulatorError(422, "Unprocessable Entity", "; ".join(problems))
        assert submission is not None
        with self._lock:
            if submission.state not in ("submitted", "forwarded"):
                raise EmulatorError(
                    409, "Conflict", f"invalid state transition: submission is {submission.state}"
                )
            submission.state = "accepted" if event.event == accept else "rejected"
            self.cases.setdefault(case_id, []).append(token)
        return Response(status_code=204)

    # --- emulator control -----------------------------------------------------------------

    async def _admin_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.faults.clear()
            return Response(status_code=204)
        body = await _json_body(request)
        if body.get("hang"):
            self.faults.hang(str(body["operation"]))
            return Response(status_code=204)
        self.faults.fail(
            str(body["operation"]), status=int(body.get("status", 503)), times=body.get("times")
        )
        return Response(status_code=204)

    async def _admin_tamper(self, request: Request) -> Response:
        self.tamper_tags(request.path_params["submissionId"])
        return Response(status_code=204)

    # --- SETs of the delivery service -----------------------------------------------------

    def _service_public(self) -> dict[str, Any]:
        key = crypto.public_jwk(self.service_key, purpose="verify", kid=self.service_kid)
        key["x5c"] = [_self_signed(key, self.service_key)]
        return key

    def _log_service_event(
        self, submission: StoredSubmission, name: str, payload: dict[str, Any]
    ) -> None:
        claims = {
            "$schema": SET_SCHEMA,
            "jti": str(uuid.uuid4()),
            "iss": self.base_url,
            "iat": int(time.time()),
            "sub": f"submission:{submission.submission_id}",
            "txn": f"case:{submission.case_id}",
            "events": {EVENTS + name: payload},
        }
        token = crypto.sign_set(claims, self.service_key, kid=self.service_kid)
        self.cases.setdefault(submission.case_id, []).append(token)


def _problem(status: int, title: str, detail: str, slug: str = "") -> Response:
    type_uri = API_PROBLEMS + slug if slug else "about:blank"
    return JSONResponse(
        {"type": type_uri, "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
    )


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise EmulatorError(400, "Bad Request", "body is not JSON") from exc
    if not isinstance(body, dict):
        raise EmulatorError(400, "Bad Request", "body is not a JSON object")
    return body


def _paging(request: Request) -> tuple[int, int]:
    try:
        limit = int(request.query_params.get("limit", 100))
        offset = int(request.query_params.get("offset", 0))
    except ValueError as exc:
        raise EmulatorError(400, "Bad Request", "limit and offset are integers") from exc
    if not 1 <= limit <= 500 or offset < 0:
        raise EmulatorError(400, "Bad Request", "limit 1..500, offset >= 0")
    return limit, offset


def _tag(token: str) -> str:
    return token.rsplit(".", 1)[-1]


def _flip(tag: str) -> str:
    return ("B" if tag[0] != "B" else "C") + tag[1:]


def _is_compact(value: str) -> bool:
    return value.count(".") in (2, 4) and all(c.isalnum() or c in "-_=." for c in value)


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _self_signed(jwk: dict[str, Any], private: RSAKey | None = None) -> str:
    """A self-signed certificate for the JWK's ``x5c`` (the OpenAPI document requires one).

    Without the private key a throwaway key signs it: the emulator only needs a well-formed
    chain, real chains are issued by the FIT-Connect PKI."""
    public = RSAKey.import_key({k: jwk[k] for k in ("kty", "n", "e")}).public_key
    signer = (
        private.private_key
        if private is not None
        else RSAKey.generate_key(2048, private=True).private_key
    )
    assert signer is not None
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"fit-connect-emulator {jwk.get('kid')}")]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(signer, hashes.SHA256())
    )
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")
