"""Who is asking: the bearer token (or, with mTLS, the client certificate) → the configured
sender or admin, and the runtime.

Senders and admins share one token table (one hash and one lookup per request), but not
their endpoints: an admin token cannot submit (``NotASender``), a sender token cannot
reach an admin endpoint (``AdminOnly``). Admin requests, allowed or refused, are audited.
"""

from __future__ import annotations

from fastapi import Request

from gateway.api.tls import client_certificate
from gateway.errors import AdminOnly, AuthError, NotASender
from gateway.routing.access import Admin, Principal, Sender
from gateway.runtime import Runtime
from gateway.store.audit import AuditOutcome


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


# Dependencies are async on purpose: FastAPI runs plain "def" dependencies in a thread
# pool, a hop per request that cost ~9 % of the accept path (py-spy).
async def principal_of(request: Request) -> Principal:
    config = runtime_of(request).config
    certified = None
    cert = client_certificate(request)  # only with mTLS; see gateway/api/tls.py
    if cert is not None:
        certified = config.certificate_sender(cert.fingerprint, cert.subject)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        if certified is not None:
            return certified
        raise AuthError("send 'Authorization: Bearer <token>'")
    principal = config.authenticate(token.strip())
    if principal is None:
        raise AuthError("the bearer token is not valid")
    if certified is not None and certified != principal:
        raise AuthError("the client certificate and the bearer token name different senders")
    return principal


async def sender_of(request: Request) -> Sender:
    principal = await principal_of(request)
    if isinstance(principal, Admin):
        raise NotASender("admin credentials cannot submit; use a sender's token")
    return principal


async def admin_of(request: Request) -> Admin:
    principal = await principal_of(request)
    if isinstance(principal, Sender):
        await runtime_of(request).audit.record(
            f"sender:{principal.name}",
            f"{request.method} {request.url.path}",
            None,
            AuditOutcome.REFUSED,
            {"reason": "sender credentials on an admin endpoint"},
        )
        raise AdminOnly("this endpoint needs admin credentials; sender tokens cannot reach it")
    return principal
