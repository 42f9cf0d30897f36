"""TLS terminated by the gateway itself, and who a client certificate says the client is.

uvicorn verifies the client certificate (``ssl_cert_reqs=CERT_REQUIRED`` against the
configured CA) but does not put it into the ASGI scope. :class:`TlsHttpToolsProtocol`
(uvicorn's httptools protocol, used only when TLS is on) adds the ASGI TLS extension
(``scope["extensions"]["tls"]``, https://asgi.readthedocs.io/en/latest/extensions.html)
with the verified certificate's SHA-256 fingerprint and RFC 4514 subject;
:func:`client_certificate` reads it. The subclass touches one callback of uvicorn's
protocol: a uvicorn upgrade that renames it fails the TLS tests, not silently.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# ssl's names of subject attributes → RFC 4514 (RFC 4519) short names.
_SHORT = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "domainComponent": "DC",
    "userId": "UID",
}


@dataclass(frozen=True)
class ClientCertificate:
    fingerprint: str
    """``sha256:<hex>`` of the DER certificate."""
    subject: str
    """RFC 4514, most specific RDN first (``CN=portal,O=Land BW``)."""


def _subject(peer: dict[str, Any]) -> str:
    rdns = []
    for rdn in peer.get("subject", ()):
        rdns.append("+".join(f"{_SHORT.get(k, k)}={v}" for k, v in rdn))
    return ",".join(reversed(rdns))


def _certificate(ssl_object: ssl.SSLObject | None) -> ClientCertificate | None:
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    return ClientCertificate(
        "sha256:" + hashlib.sha256(der).hexdigest(), _subject(ssl_object.getpeercert() or {})
    )


class TlsHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the verified client certificate in the scope."""

    _client_certificate: ClientCertificate | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._client_certificate = _certificate(transport.get_extra_info("ssl_object"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._client_certificate is not None:
            extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
            extensions["tls"] = {
                "client_cert_name": self._client_certificate.subject,
                "xoev_client_cert": self._client_certificate,
            }


def client_certificate(request: Request) -> ClientCertificate | None:
    """The verified client certificate of this request's connection, if any."""
    tls = request.scope.get("extensions", {}).get("tls")
    if not tls:
        return None
    cert = tls.get("xoev_client_cert")
    return cert if isinstance(cert, ClientCertificate) else None
