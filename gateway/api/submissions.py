"""``POST /v1/submissions``: the hot path, as a plain Starlette route registered once.

FastAPI's request handling around a handler (parameter analysis, dependency resolution,
response serialisation) cost ~20 % of ``api`` throughput, and authentication as a
dependency another 13 % of the event loop (``docs/performance.md``, second round). So
the handler takes the bare Starlette ``Request``, authenticates inline and is mounted as
a plain ``Route`` ahead of every other route. FastAPI does not see such a route, so its
OpenAPI entry is declared here, once, and merged into FastAPI's document by
:func:`install`; ``tests/unit/test_api_submissions.py`` pins both.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.routing import Route

from gateway.accept import Incoming
from gateway.api.auth import runtime_of, sender_of
from gateway.api.body import media_type, read_submission
from gateway.api.limits import SenderLimits
from gateway.api.problems import PROBLEM_JSON
from gateway.api.zip_body import ZIP_TYPES
from gateway.errors import GatewayError
from gateway.store.records import AttachmentRecord
from gateway.store.states import SubmissionStatus
from gateway.telemetry.logs import fields
from gateway.telemetry.metrics import SUBMISSIONS_REJECTED

PATH = "/v1/submissions"

log = logging.getLogger("xoev_gateway.api")


class Links(BaseModel):
    self: str


class AcceptedBody(BaseModel):
    id: str
    status: Literal["accepted", "duplicate"]
    """``duplicate``: this message was accepted before; ``id`` is that submission's."""
    links: Links


async def submit(request: Request) -> Response:
    sender = await sender_of(request)
    runtime = runtime_of(request)
    limits: SenderLimits = request.app.state.sender_limits
    limit = runtime.config.limits.for_sender(sender.name)
    declared = request.headers.get("content-length", "")
    written: list[AttachmentRecord] = []
    # Blobs are written before the accept decides; an upload holds the blob lock until
    # then, so that removing a rejected upload's blobs never races an accept of the same
    # content (gateway/store/blobs.py).
    multipart = media_type(request) == "multipart/form-data"
    try:
        limits.admit(sender.name, limit, int(declared) if declared.isdigit() else None)
        async with runtime.blobs.uploading() if multipart else contextlib.nullcontext():
            body, attachments = await read_submission(
                request, runtime.blobs, runtime.settings.max_xml_bytes, written
            )
            limits.charge_bytes(sender.name, limit, len(body) + sum(a.size for a in attachments))
            container = "zip" if media_type(request) in ZIP_TYPES else None
            accepted = await runtime.accept(
                Incoming(body, sender.name, attachments, container=container)
            )
    except Exception as exc:  # (a cancelled request's blobs are left to the sweep)
        if written:
            await runtime.retention.remove_unreferenced(sorted({a.sha256 for a in written}))
        if isinstance(exc, GatewayError):
            SUBMISSIONS_REJECTED.labels("api", exc.slug).inc()
            # The problem type, not its detail: validation messages quote payload values.
            log.log(
                logging.WARNING if exc.status >= 500 else logging.INFO,
                "rejected: %s",
                exc.slug,
                extra=fields(
                    event="submission.rejected",
                    problem=exc.slug,
                    status=exc.status,
                    sender=sender.name,
                    source="api",
                    config_version=runtime.config.version,
                ),
            )
        raise
    if accepted.duplicate and written:
        # The first submission's attachments are what counts; this upload's are not kept.
        await runtime.retention.remove_unreferenced(sorted({a.sha256 for a in written}))
    location = f"{PATH}/{accepted.id}"
    # The same message again: the first answer (202, same id), but said to be the same
    # submission, so that a sender's retry logic can tell a retry from a new case.
    status = "duplicate" if accepted.duplicate else SubmissionStatus.ACCEPTED
    payload = AcceptedBody(id=accepted.id, status=status, links=Links(self=location))
    return JSONResponse(payload.model_dump(), status_code=202, headers={"Location": location})


_PROBLEMS = {
    "400": "Not well-formed or unsafe XML, a routing key missing, or a broken multipart body",
    "401": "No or an invalid bearer token",
    "403": "The sender may not send this",
    "409": "The same nachrichtenUUID was accepted before with other content",
    "413": "The body or the XML is too large",
    "415": "Neither application/xml, multipart/form-data nor application/zip",
    "422": (
        "Invalid against the schema or the business rules, unknown recipient or no route; "
        "an attachment without a usable file name or content type, or a value longer than "
        "the gateway accepts (`field` names it)"
    ),
    "429": "Over the sender's rate or byte limit (see Retry-After)",
    "503": "Durability cannot be guaranteed right now (store or broker down): retry later",
}

OPERATION: dict[str, Any] = {
    "summary": "Submit a message",
    "description": (
        "An XÖV message as `application/xml`, or `multipart/form-data` with the XML in the "
        "part `message` and attachments in further parts, or `application/zip` holding one "
        "top-level `.xml` entry (the message) and its files (the attachments; they must be "
        "the files the message lists where its schema set says so). The message identity "
        "(e.g. `nachrichtenUUID`) is the idempotency key: the same message again returns the "
        "first answer (202, the same id) with `status: duplicate`; the same identity with "
        "other content is 409."
    ),
    "operationId": "submit_v1_submissions_post",
    "security": [{"bearer": []}],
    "requestBody": {
        "required": True,
        "content": {
            "application/xml": {"schema": {"type": "string"}},
            "application/zip": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"message": {"type": "string", "format": "binary"}},
                    "required": ["message"],
                }
            },
        },
    },
    "responses": {
        "202": {
            "description": "Accepted: durably stored, deliveries queued",
            "headers": {"Location": {"schema": {"type": "string"}}},
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/AcceptedBody"}}
            },
        },
        **{
            status: {
                "description": description,
                "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            }
            for status, description in _PROBLEMS.items()
        },
    },
}
"""The OpenAPI operation of the route, the one description the document gets."""

_PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "line": {"type": ["integer", "null"]},
                    "message": {"type": "string"},
                },
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
}


def install(app: FastAPI) -> None:
    """Mount the route ahead of all others and add its operation to ``app.openapi()``."""
    app.router.routes.insert(0, Route(PATH, submit, methods=["POST"]))
    app.openapi = _with_operation(app, app.openapi)  # type: ignore[method-assign]


OpenAPI = Callable[[], dict[str, Any]]


def _with_operation(app: FastAPI, generate: OpenAPI) -> OpenAPI:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()  # FastAPI's, cached by it in app.openapi_schema
        document.setdefault("paths", {}).setdefault(PATH, {})["post"] = OPERATION
        components = document.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        accepted = AcceptedBody.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(accepted.pop("$defs", {}))
        schemas["AcceptedBody"] = accepted
        schemas["Problem"] = _PROBLEM_SCHEMA
        components.setdefault("securitySchemes", {})["bearer"] = {
            "type": "http",
            "scheme": "bearer",
        }
        return document

    return openapi
