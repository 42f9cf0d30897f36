"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import errno
import logging
import math
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from gateway.errors import (
    GatewayError,
    InsufficientStorage,
    IntakeError,
    InvalidAttachment,
    InvalidMessage,
    NotPermitted,
    RateLimited,
    UnacceptableField,
    Unavailable,
)

PROBLEM_JSON = "application/problem+json"

log = logging.getLogger("xoev_gateway.api")


def problem(
    status: int,
    title: str,
    detail: str,
    type_uri: str = "about:blank",
    retry_after: float | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": type_uri, "title": title, "status": status, "detail": detail}
    body.update(extra)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status in (503, 507):
        headers = {"Retry-After": "5"}
    if retry_after is not None:
        headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def from_error(exc: GatewayError, instance: str | None = None) -> JSONResponse:
    extra: dict[str, Any] = {}
    if instance:
        extra["instance"] = instance
    if isinstance(exc, InvalidMessage):
        extra["errors"] = [
            {"path": e.path, "line": e.line, "message": e.message} for e in exc.errors
        ]
    if isinstance(exc, NotPermitted):
        extra["rule"] = exc.rule
    if isinstance(exc, IntakeError) and exc.report is not None:
        # The full validation report (docs/validation.md); ``errors`` stays for clients
        # that read only that.
        extra["report"] = exc.report.to_json()
    if isinstance(exc, InvalidAttachment | UnacceptableField):
        extra["field"] = exc.field
    retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
    return problem(exc.status, exc.title, exc.detail, exc.type_uri, retry_after, **extra)


async def gateway_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    return from_error(exc, request.url.path)


async def os_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A file system error that nothing nearer mapped (e.g. spooling a multipart part to a
    full temp directory): our outage, so 507 or 503, not a 500."""
    assert isinstance(exc, OSError)
    log.warning("%s %s: %r", request.method, request.url.path, exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        error: Unavailable = InsufficientStorage("no space left to take this request; retry later")
    else:
        error = Unavailable(f"storage unavailable: {exc.strerror or type(exc).__name__}")
    return from_error(error, request.url.path)


async def client_gone_handler(request: Request, exc: Exception) -> Response:
    """The client went away mid-request (or was cut as too slow): nobody to answer."""
    return Response(status_code=400)


async def internal_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Anything unforeseen still answers problem+json (the server logs the traceback)."""
    return problem(500, "Internal error", "an unexpected error occurred", instance=request.url.path)


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return problem(exc.status_code, str(exc.detail), str(exc.detail))


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"path": "/".join(str(p) for p in e["loc"]), "line": None, "message": e["msg"]}
        for e in exc.errors()
    ]
    return problem(422, "Request is invalid", "the request does not match the API", errors=errors)
