"""HTTP: POST each delivery to a Fachverfahren's REST endpoint.

The body is the mapped payload as JSON (``body: json``, see ``Delivery.document``) or the
XML as received (``body: xml``). The delivery id goes along as ``Idempotency-Key`` so that
a redelivery returns the first case instead of opening a second one, and the gateway's
authenticated sender as ``X-Xoev-Sender`` (who really sent it, whatever the message's
``autor`` claims).

Outcomes: 2xx delivered (the receipt reference from a JSON pointer into the answer or
from a header); 5xx, 408, 429 (honouring ``Retry-After``), timeouts and connection errors
are transient; any other status is permanent. Secrets are read from environment variables
named in the settings and never appear in problems or logs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
from pydantic import Field

from gateway.sdk import (
    Adapter,
    AdapterSettings,
    Delivery,
    PermanentDeliveryError,
    Receipt,
    SecretEnv,
    TransientDeliveryError,
    secret_from_env,
)

log = logging.getLogger("xoev_gateway.adapters.http")

SENDER_HEADER = "X-Xoev-Sender"


class NoAuth(AdapterSettings):
    type: Literal["none"] = "none"


class BasicAuth(AdapterSettings):
    type: Literal["basic"]
    username: str
    password_env: SecretEnv


class BearerAuth(AdapterSettings):
    type: Literal["bearer"]
    token_env: SecretEnv


class OAuth2ClientCredentials(AdapterSettings):
    type: Literal["oauth2"]
    token_url: str
    client_id: str
    client_secret_env: SecretEnv
    scope: str | None = None


Auth = Annotated[
    NoAuth | BasicAuth | BearerAuth | OAuth2ClientCredentials, Field(discriminator="type")
]


MAPPED_CONTENT_TYPES = {
    "json": "application/json",
    "xml": "application/xml",
    "keyvalue": "text/plain; charset=utf-8",
}


class HttpSettings(AdapterSettings):
    url: str
    body: Literal["json", "xml", "mapped"] = "json"
    """json: the mapped payload (or a metadata envelope) as JSON; xml: the original XML;
    mapped: the payload exactly as the route's mapping rendered it (JSON, XML or key/value)."""
    auth: Auth = NoAuth()
    headers: dict[str, str] = {}
    """Extra, non-secret headers (e.g. a tenant id)."""
    reference_pointer: str | None = "/case_number"
    """RFC 6901 JSON pointer to the case number in the answer."""
    reference_header: str | None = None
    """Take the reference from this answer header instead (e.g. ``Location``)."""
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    ca_file: Path | None = None
    """Trust this CA for the server certificate (default: the system's)."""
    client_cert: Path | None = None
    """Client certificate (PEM) for mutual TLS."""
    client_key: Path | None = None


class HttpAdapter(Adapter[HttpSettings]):
    settings_model = HttpSettings

    def __init__(self, settings: HttpSettings) -> None:
        super().__init__(settings)
        self._client: httpx.AsyncClient | None = None
        self._token: tuple[str, float] | None = None
        self._token_lock = asyncio.Lock()

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            s = self.settings
            verify: ssl.SSLContext | bool = True
            if s.ca_file is not None or s.client_cert is not None:
                verify = ssl.create_default_context(
                    cafile=str(s.ca_file) if s.ca_file is not None else None
                )
                if s.client_cert is not None:
                    key = str(s.client_key) if s.client_key is not None else None
                    verify.load_cert_chain(str(s.client_cert), key)
            self._client = httpx.AsyncClient(
                verify=verify, timeout=s.request_timeout_seconds, follow_redirects=False
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def deliver(self, delivery: Delivery) -> Receipt:
        s = self.settings
        headers = {
            **s.headers,
            "Idempotency-Key": delivery.delivery_id,
            SENDER_HEADER: delivery.sender,
        }
        if s.body == "mapped" and delivery.payload_body is not None:
            content = delivery.payload_body
            headers["Content-Type"] = MAPPED_CONTENT_TYPES.get(
                delivery.payload_format or "", "application/octet-stream"
            )
        elif s.body == "mapped":
            raise PermanentDeliveryError("body 'mapped' needs a mapping for this destination")
        elif s.body == "json":
            content = json.dumps(delivery.document(), ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json"
        else:
            content = delivery.xml
            headers["Content-Type"] = "application/xml"
        headers.update(await self._auth_headers())
        try:
            response = await self.client().post(s.url, content=content, headers=headers)
        except httpx.TimeoutException as exc:
            raise TransientDeliveryError(f"timed out: {type(exc).__name__}") from None
        except httpx.TransportError as exc:
            raise TransientDeliveryError(f"connection failed: {type(exc).__name__}") from None
        if response.status_code == 401 and isinstance(s.auth, OAuth2ClientCredentials):
            # The cached token may have been revoked early: fetch a new one next attempt.
            self._token = None
            raise TransientDeliveryError("401 with a cached OAuth2 token; token dropped")
        _raise_for_status(response)
        return Receipt(reference=self._reference(response), message=f"HTTP {response.status_code}")

    async def _auth_headers(self) -> dict[str, str]:
        auth = self.settings.auth
        if isinstance(auth, BasicAuth):
            pair = f"{auth.username}:{secret_from_env(auth.password_env)}".encode()
            return {"Authorization": f"Basic {base64.b64encode(pair).decode()}"}
        if isinstance(auth, BearerAuth):
            return {"Authorization": f"Bearer {secret_from_env(auth.token_env)}"}
        if isinstance(auth, OAuth2ClientCredentials):
            return {"Authorization": f"Bearer {await self._oauth2_token(auth)}"}
        return {}

    async def _oauth2_token(self, auth: OAuth2ClientCredentials) -> str:
        """A client-credentials token, cached until shortly before it expires."""
        async with self._token_lock:
            if self._token is not None and self._token[1] > time.monotonic():
                return self._token[0]
            form = {"grant_type": "client_credentials"}
            if auth.scope:
                form["scope"] = auth.scope
            try:
                response = await self.client().post(
                    auth.token_url,
                    data=form,
                    auth=(auth.client_id, secret_from_env(auth.client_secret_env)),
                )
            except httpx.TransportError as exc:
                raise TransientDeliveryError(
                    f"token endpoint unreachable: {type(exc).__name__}"
                ) from None
            _raise_for_status(response, what="token endpoint")
            try:
                body = response.json()
                token = str(body["access_token"])
                expires_in = float(body.get("expires_in", 300))
            except (ValueError, KeyError, TypeError):
                raise PermanentDeliveryError("token endpoint sent no access_token") from None
            # Renew a little early so that a token does not expire in flight.
            self._token = (token, time.monotonic() + max(expires_in * 0.9, expires_in - 30))
            return token

    def _reference(self, response: httpx.Response) -> str | None:
        s = self.settings
        if s.reference_header is not None:
            header: str | None = response.headers.get(s.reference_header)
            return header
        if s.reference_pointer is None:
            return None
        try:
            found = json_pointer(response.json(), s.reference_pointer)
        except (ValueError, LookupError):
            # The case exists: failing now would only redeliver it. Say what is missing.
            log.warning("no reference at %s in the answer", s.reference_pointer)
            return None
        return None if found is None else str(found)


def _raise_for_status(response: httpx.Response, what: str = "Fachverfahren") -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = f"{what} answered HTTP {status}: {response.text[:200]}"
    if status == 429:
        raise TransientDeliveryError(detail, retry_after=retry_after(response))
    if status >= 500 or status == 408:
        raise TransientDeliveryError(detail, retry_after=retry_after(response))
    raise PermanentDeliveryError(detail)


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (delta or HTTP date), if the server sent one."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def json_pointer(document: Any, pointer: str) -> Any:
    """Resolve an RFC 6901 pointer; raises ``LookupError`` when a step is missing."""
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        raise ValueError(f"JSON pointer must start with '/': {pointer!r}")
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(document, list):
            document = document[int(token)]
        elif isinstance(document, dict):
            document = document[token]
        else:
            raise LookupError(token)
    return document
