"""Async client for the FIT-Connect Submission API 1.1.3, subscriber side.

Errors::

    SubmissionApiError
    ├── ApiUnavailable      transport error, timeout, 5xx, 429: try again later
    └── ApiRefused          any other 4xx; ``status`` and the problem body are kept
        ├── ApiNotFound     404 (submission not in state submitted/forwarded, unknown case)
        └── ApiConflict     409 (invalid state transition, e.g. accept after accept)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from joserfc.jwk import RSAKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.errors import ConfigError
from gateway.sources.fitconnect import crypto

TOKEN_MARGIN = 60.0  # seconds before expiry at which a token is renewed
DEFAULT_TOKEN_LIFETIME = 300.0  # when the token endpoint gives no expires_in
PAGE = 500
_M = TypeVar("_M", bound=BaseModel)


class SubmissionApiError(Exception):
    pass


class ApiUnavailable(SubmissionApiError):
    pass


class ApiRefused(SubmissionApiError):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class ApiNotFound(ApiRefused):
    pass


class ApiConflict(ApiRefused):
    pass


class _Model(BaseModel):
    # Answers may grow fields; only what we use is declared.
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class PickupItem(_Model):
    destination_id: str = Field(alias="destinationId")
    submission_id: str = Field(alias="submissionId")
    case_id: str = Field(alias="caseId")


class _Page(_Model):
    total_count: int | None = Field(default=None, alias="totalCount")


class _PickupPage(_Page):
    submissions: list[PickupItem]


class _EventPage(_Page):
    event_log: list[str] = Field(alias="eventLog")


class ServiceType(_Model):
    identifier: str
    name: str | None = None


class Submission(_Model):
    destination_id: str = Field(alias="destinationId")
    submission_id: str = Field(alias="submissionId")
    case_id: str = Field(alias="caseId")
    attachments: list[str]
    service_type: ServiceType = Field(alias="serviceType")
    encrypted_metadata: str | None = Field(default=None, alias="encryptedMetadata")
    encrypted_data: str | None = Field(default=None, alias="encryptedData")


class _Token(_Model):
    access_token: str
    expires_in: float | None = None


class SubmissionApiClient:
    """One destination's view of the Submission API (its OAuth client, its token)."""

    def __init__(
        self,
        *,
        api_base_url: str,
        token_url: str,
        client_id: str,
        client_secret: str,
        http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base = api_base_url.rstrip("/")
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._owns_http = http is None
        self._clock = clock
        self._token: str | None = None
        self._token_expires = 0.0
        self._jwks: dict[str, RSAKey] = {}
        self._destination_keys: dict[tuple[str, str], RSAKey] = {}

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # --- auth -----------------------------------------------------------------------------

    async def token(self) -> str:
        if self._token and self._clock() < self._token_expires:
            return self._token
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._secret,
        }
        response = await self._send("POST", self.token_url, data=form, auth=False)
        try:
            token = _Token.model_validate(response.json())
        except (ValueError, ValidationError) as exc:
            raise ApiUnavailable(f"token endpoint answered no token: {exc}") from exc
        lifetime = token.expires_in or DEFAULT_TOKEN_LIFETIME
        self._token = token.access_token
        self._token_expires = self._clock() + max(lifetime - TOKEN_MARGIN, lifetime / 2)
        return self._token

    # --- subscriber operations ------------------------------------------------------------

    async def submissions_for_pickup(self, destination_id: str) -> list[PickupItem]:
        items: list[PickupItem] = []
        while True:
            params = {"destinationId": destination_id, "limit": PAGE, "offset": len(items)}
            response = await self._send("GET", f"{self.base}/v1/submissions", params=params)
            page = _parse(_PickupPage, response)
            items.extend(page.submissions)
            if not page.submissions or len(items) >= (page.total_count or 0):
                return items

    async def submission(self, submission_id: str) -> Submission:
        response = await self._send("GET", f"{self.base}/v1/submissions/{submission_id}")
        return _parse(Submission, response)

    async def attachment(self, submission_id: str, attachment_id: str) -> str:
        url = f"{self.base}/v1/submissions/{submission_id}/attachments/{attachment_id}"
        response = await self._send("GET", url)
        return response.text.strip()

    async def events(self, case_id: str) -> list[str]:
        log: list[str] = []
        while True:
            params = {"limit": PAGE, "offset": len(log)}
            response = await self._send(
                "GET", f"{self.base}/v1/cases/{case_id}/events", params=params
            )
            page = _parse(_EventPage, response)
            log.extend(page.event_log)
            if not page.event_log or len(log) >= (page.total_count or 0):
                return log

    async def post_event(self, case_id: str, token: str) -> None:
        await self._send(
            "POST",
            f"{self.base}/v1/cases/{case_id}/events",
            content=token.encode("ascii"),
            headers={"Content-Type": "application/jose"},
        )

    # --- keys -----------------------------------------------------------------------------

    async def service_keys(self, *, refresh: bool = False) -> dict[str, RSAKey]:
        """The delivery service's SET keys from ``/.well-known/jwks.json``, cached."""
        if self._jwks and not refresh:
            return self._jwks
        response = await self._send("GET", f"{self.base}/.well-known/jwks.json", auth=False)
        try:
            keys = response.json()["keys"]
            self._jwks = {
                k["kid"]: crypto.rsa_key(k, purpose="verify")
                for k in keys
                if k.get("alg") == crypto.SET_ALG
            }
        except (ValueError, KeyError, TypeError, ConfigError) as exc:
            raise ApiUnavailable(f"unusable JWKS: {exc}") from exc
        return self._jwks

    async def destination_key(self, destination_id: str, kid: str) -> RSAKey | None:
        """A destination's public key (for SETs a destination signed), or None if unknown."""
        cached = self._destination_keys.get((destination_id, kid))
        if cached is not None:
            return cached
        url = f"{self.base}/v1/destinations/{destination_id}/keys/{kid}"
        try:
            response = await self._send("GET", url, auth=False)
        except ApiNotFound:
            return None
        try:
            key = crypto.rsa_key(response.json(), purpose="verify")
        except (ValueError, ConfigError):
            return None
        self._destination_keys[(destination_id, kid)] = key
        return key

    # --- transport ------------------------------------------------------------------------

    async def _send(
        self, method: str, url: str, *, auth: bool = True, **kwargs: Any
    ) -> httpx.Response:
        extra = dict(kwargs.pop("headers", None) or {})
        for attempt in (1, 2):
            headers = dict(extra)
            if auth:
                headers["Authorization"] = f"Bearer {await self.token()}"
            try:
                response = await self._http.request(method, url, headers=headers, **kwargs)
            except httpx.HTTPError as exc:
                raise ApiUnavailable(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
            if response.status_code == 401 and auth and attempt == 1:
                self._token = None  # revoked or expired early: one fresh token, once
                continue
            _raise_for_status(method, url, response)
            return response
        raise AssertionError("unreachable")


def _raise_for_status(method: str, url: str, response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = f"{method} {url}: {_problem_text(response)}"
    if status >= 500 or status == 429:
        raise ApiUnavailable(f"{status} {detail}")
    if status == 404:
        raise ApiNotFound(status, detail)
    if status == 409:
        raise ApiConflict(status, detail)
    raise ApiRefused(status, detail)


def _problem_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)[:500]
    return str(body)[:200]


def _parse(model: type[_M], response: httpx.Response) -> _M:
    try:
        return model.model_validate(response.json())
    except (ValueError, ValidationError) as exc:
        raise ApiUnavailable(f"unexpected answer from the Submission API: {exc}") from exc
