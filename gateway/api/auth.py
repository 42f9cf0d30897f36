"""Who is asking: the bearer token → the configured sender, and the runtime it asks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.api.tls import client_certificate
from gateway.errors import AuthError, Forbidden
from gateway.routing.config import Sender
from gateway.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


# Dependencies are async on purpose: FastAPI runs plain "def" dependencies in a thread
# pool, a hop per request that cost ~9 % of the accept path (py-spy).
async def sender_of(request: Request) -> Sender:
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
    sender = config.authenticate(token.strip())
    if sender is None:
        raise AuthError("the bearer token is not valid")
    if certified is not None and certified.name != sender.name:
        raise AuthError("the client certificate and the bearer token name different senders")
    return sender


async def admin_of(sender: Annotated[Sender, Depends(sender_of)]) -> Sender:
    if sender.role != "admin":
        raise Forbidden("this endpoint needs the admin role")
    return sender
