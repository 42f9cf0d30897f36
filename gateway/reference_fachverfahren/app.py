"""A small stand-in Fachverfahren: takes cases over REST (JSON or XML) and SOAP.

It is the real target of the adapter tests, the demo and the benchmarks:

- ``POST /cases`` stores a case and answers ``{"case_number": "AZ-2026-000123"}``;
  the same ``Idempotency-Key`` again returns the same case number and stores nothing new;
- ``POST /soap`` does the same for the SOAP operation ``CreateCase`` (WSDL at
  ``GET /soap?wsdl``), idempotent by its ``requestId``;
- ``GET /cases`` lists what it received; ``GET /admin/state`` counts cases and tokens;
- ``POST /admin/fail {"mode": "none|5xx|429|slow|4xx", "count": n}`` makes the next ``n``
  requests (all of them without ``count``) fail that way, for fault tests (``slow``
  answers after ``slow_seconds``; a request its client gives up on meanwhile creates no
  case, so it cannot turn up later, e.g. in the next test);
- optional auth (Basic, static Bearer tokens, OAuth2 client credentials at
  ``POST /oauth/token``) and mutual TLS via the server's TLS options.

The credentials in :class:`ReferenceConfig` are those of a test double, kept in its own
config file; the gateway itself never holds secrets in configuration.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from lxml import etree
from pydantic import BaseModel, Field

WSDL_FILE = Path(__file__).with_name("fachverfahren.wsdl")
SOAP_NS = "urn:xoev-gateway:reference-fachverfahren"
ENVELOPE_NS = "http://schemas.xmlsoap.org/soap/envelope/"


class ReferenceConfig(BaseModel):
    state_file: Path | None = None
    """Cases are also kept in this JSON file (and loaded from it on start)."""
    basic_users: dict[str, str] = {}
    bearer_tokens: list[str] = []
    oauth_clients: dict[str, str] = {}
    token_ttl_seconds: float = 3600.0

    @property
    def auth_required(self) -> bool:
        return bool(self.basic_users or self.bearer_tokens or self.oauth_clients)


class Case(BaseModel):
    case_number: str
    idempotency_key: str | None
    channel: Literal["rest", "soap"]
    content_type: str
    received_at: str
    auth: str | None
    """How the request authenticated (scheme and user or client), never the secret."""
    body: str
    sender: str | None = None
    """The gateway's authenticated sender, from the ``X-Xoev-Sender`` header (REST)."""


class FailRequest(BaseModel):
    mode: Literal["none", "5xx", "429", "slow", "4xx"]
    count: int | None = Field(default=None, ge=1)
    """How many requests fail; ``None``: all until the mode is set to ``none``."""
    slow_seconds: float = Field(default=30.0, ge=0)
    retry_after_seconds: int = Field(default=1, ge=0)


class CaseBook:
    """The Fachverfahren's cases; numbers are handed out in order, per idempotency key once."""

    def __init__(self, state_file: Path | None = None) -> None:
        self.state_file = state_file
        self.cases: list[Case] = []
        self._by_key: dict[str, Case] = {}
        self.repeats = 0
        """Requests that came again with a known Idempotency-Key (answered, no new case)."""
        if state_file is not None and state_file.exists():
            for raw in json.loads(state_file.read_text(encoding="utf-8")):
                self._remember(Case.model_validate(raw))

    def _remember(self, case: Case) -> None:
        self.cases.append(case)
        if case.idempotency_key is not None:
            self._by_key[case.idempotency_key] = case

    def add(
        self,
        key: str | None,
        channel: Literal["rest", "soap"],
        content_type: str,
        body: str,
        auth: str | None,
        sender: str | None = None,
    ) -> tuple[Case, bool]:
        if key is not None and key in self._by_key:
            self.repeats += 1
            return self._by_key[key], False
        year = datetime.now(UTC).year
        case = Case(
            case_number=f"AZ-{year}-{len(self.cases) + 1:06d}",
            idempotency_key=key,
            channel=channel,
            content_type=content_type,
            received_at=datetime.now(UTC).isoformat(),
            auth=auth,
            body=body,
            sender=sender,
        )
        self._remember(case)
        self._save()
        return case, True

    def clear(self) -> None:
        self.cases.clear()
        self._by_key.clear()
        self.repeats = 0
        self._save()

    def _save(self) -> None:
        if self.state_file is None:
            return
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        tmp.write_text(json.dumps([c.model_dump() for c in self.cases], indent=1), "utf-8")
        os.replace(tmp, self.state_file)


@dataclass
class Faults:
    mode: str = "none"
    remaining: int | None = None
    slow_seconds: float = 30.0
    retry_after_seconds: int = 1

    def set(self, request: FailRequest) -> None:
        self.mode = request.mode
        self.remaining = request.count
        self.slow_seconds = request.slow_seconds
        self.retry_after_seconds = request.retry_after_seconds

    def take(self) -> str:
        """The fault for this request (``none`` when healthy)."""
        mode = self.mode
        if mode != "none" and self.remaining is not None:
            self.remaining -= 1
            if self.remaining <= 0:
                self.mode, self.remaining = "none", None
        return mode


class Tokens:
    """OAuth2 access tokens issued by ``/oauth/token`` with their expiry."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.issued: dict[str, tuple[str, float]] = {}

    def issue(self, client_id: str) -> str:
        token = secrets.token_urlsafe(24)
        self.issued[token] = (client_id, time.monotonic() + self.ttl)
        return token

    def client(self, token: str) -> str | None:
        found = self.issued.get(token)
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]


def create_app(config: ReferenceConfig | None = None) -> FastAPI:
    cfg = config or ReferenceConfig()
    book = CaseBook(cfg.state_file)
    faults = Faults()
    tokens = Tokens(cfg.token_ttl_seconds)
    app = FastAPI(title="Reference Fachverfahren", docs_url="/docs")
    app.state.book = book
    app.state.faults = faults

    def authenticate(request: Request) -> str | None | Literal[False]:
        """The authenticated principal, ``None`` without auth configured, False if refused."""
        if not cfg.auth_required:
            return None
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            expected = cfg.basic_users.get(user)
            if expected is not None and hmac.compare_digest(expected, password):
                return f"basic:{user}"
        if scheme.lower() == "bearer":
            if any(hmac.compare_digest(value, t) for t in cfg.bearer_tokens):
                return "bearer"
            client = tokens.client(value)
            if client is not None:
                return f"oauth2:{client}"
        return False

    def refused() -> Response:
        return JSONResponse(
            {"error": "unauthorized"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )

    async def fault_response(request: Request, soap: bool) -> Response | None:
        """The fault for this request; call it after the body was read (a "slow" request
        watches for the client giving up, which reads from the request stream)."""
        mode = faults.take()
        if mode == "slow":
            deadline = time.monotonic() + faults.slow_seconds
            while time.monotonic() < deadline:
                if await request.is_disconnected():
                    # The client gave up (timeout, cancelled): nothing to store, and no
                    # case appears long after the client has moved on (e.g. in a later test).
                    return Response(status_code=499)
                await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            return None
        if mode == "429":
            headers = {"Retry-After": str(faults.retry_after_seconds)}
            return JSONResponse({"error": "too many requests"}, status_code=429, headers=headers)
        if mode == "5xx":
            if soap:
                return soap_fault("soap:Server", "Fachverfahren temporarily unavailable")
            return JSONResponse({"error": "temporarily unavailable"}, status_code=503)
        if mode == "4xx":
            if soap:
                return soap_fault("soap:Client", "case rejected: invalid content")
            return JSONResponse({"error": "case rejected: invalid content"}, status_code=422)
        return None

    @app.post("/cases")
    async def post_case(request: Request) -> Response:
        principal = authenticate(request)
        if principal is False:
            return refused()
        raw = await request.body()
        failure = await fault_response(request, soap=False)
        if failure is not None:
            return failure
        content_type = request.headers.get("content-type", "application/octet-stream")
        body = raw.decode("utf-8", errors="replace")
        if content_type.startswith("application/json"):
            try:
                json.loads(body)
            except ValueError:
                return JSONResponse({"error": "body is not JSON"}, status_code=400)
        case, created = book.add(
            request.headers.get("idempotency-key"),
            "rest",
            content_type,
            body,
            principal,
            request.headers.get("x-xoev-sender"),
        )
        return JSONResponse(
            {"case_number": case.case_number},
            status_code=201 if created else 200,
            headers={"Location": f"/cases/{case.case_number}"},
        )

    @app.get("/cases")
    async def list_cases() -> list[Case]:
        return book.cases

    @app.get("/cases/{case_number}")
    async def get_case(case_number: str) -> Response:
        for case in book.cases:
            if case.case_number == case_number:
                return JSONResponse(case.model_dump())
        return JSONResponse({"error": "no such case"}, status_code=404)

    @app.post("/oauth/token")
    async def oauth_token(request: Request) -> Response:
        form = await request.form()
        client_id, client_secret = (
            str(form.get("client_id", "")),
            str(form.get("client_secret", "")),
        )
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            client_id, _, client_secret = base64.b64decode(value).decode().partition(":")
        expected = cfg.oauth_clients.get(client_id)
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if expected is None or not hmac.compare_digest(expected, client_secret):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        return JSONResponse(
            {
                "access_token": tokens.issue(client_id),
                "token_type": "Bearer",
                "expires_in": cfg.token_ttl_seconds,
            }
        )

    @app.post("/admin/fail")
    async def admin_fail(request: FailRequest) -> dict[str, Any]:
        faults.set(request)
        return {"mode": faults.mode, "remaining": faults.remaining}

    @app.post("/admin/reset")
    async def admin_reset() -> dict[str, str]:
        book.clear()
        faults.set(FailRequest(mode="none"))
        tokens.issued.clear()
        return {"status": "reset"}

    @app.get("/admin/state")
    async def admin_state() -> dict[str, Any]:
        return {
            "cases": len(book.cases),
            "repeats": book.repeats,
            "tokens_issued": len(tokens.issued),
            "fault": faults.mode,
        }

    @app.get("/soap")
    async def wsdl(request: Request) -> Response:
        address = str(request.url.replace(query=""))
        text = WSDL_FILE.read_text(encoding="utf-8").replace("http://127.0.0.1:8090/soap", address)
        return Response(text, media_type="text/xml")

    @app.post("/soap")
    async def soap(request: Request) -> Response:
        principal = authenticate(request)
        if principal is False:
            return refused()
        body = await request.body()
        failure = await fault_response(request, soap=True)
        if failure is not None:
            return failure
        try:
            call = _create_case_call(body)
        except ValueError as exc:
            return soap_fault("soap:Client", str(exc))
        case, _ = book.add(
            call["requestId"],
            "soap",
            request.headers.get("content-type", ""),
            call["document"],
            principal,
        )
        return soap_response(case.case_number)

    return app


_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _create_case_call(body: bytes) -> dict[str, str]:
    try:
        root = etree.fromstring(body, _SAFE_PARSER)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not well-formed: {exc}") from None
    call = root.find(f"{{{ENVELOPE_NS}}}Body/{{{SOAP_NS}}}CreateCase")
    if call is None:
        raise ValueError("the body holds no CreateCase")
    fields = {etree.QName(child).localname: child.text or "" for child in call}
    for name in ("requestId", "messageType", "municipality", "document"):
        if name not in fields:
            raise ValueError(f"CreateCase lacks {name}")
    return fields


def soap_response(case_number: str) -> Response:
    envelope = (
        f'<soap:Envelope xmlns:soap="{ENVELOPE_NS}"><soap:Body>'
        f'<CreateCaseResponse xmlns="{SOAP_NS}"><caseNumber>{case_number}</caseNumber>'
        "</CreateCaseResponse></soap:Body></soap:Envelope>"
    )
    return Response(envelope, media_type="text/xml; charset=utf-8")


def soap_fault(code: str, message: str) -> Response:
    envelope = etree.Element(f"{{{ENVELOPE_NS}}}Envelope", nsmap={"soap": ENVELOPE_NS})
    fault = etree.SubElement(
        etree.SubElement(envelope, f"{{{ENVELOPE_NS}}}Body"), f"{{{ENVELOPE_NS}}}Fault"
    )
    etree.SubElement(fault, "faultcode").text = code
    etree.SubElement(fault, "faultstring").text = message
    return Response(etree.tostring(envelope), status_code=500, media_type="text/xml; charset=utf-8")
