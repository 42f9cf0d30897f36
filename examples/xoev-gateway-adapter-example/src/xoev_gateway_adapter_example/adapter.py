"""Delivers to "Aktenablage", a (fictitious) Fachverfahren with a small REST API.

Its API takes a case as JSON with German field names at ``POST {base_url}/cases``:
the mapped fields (``daten``) when the route maps the submission, else the XML as received
(``antrag_xml``), and the attachments base64-encoded (``anlagen``). It authenticates with a
static API token, answers ``201 {"case_number": ...}`` (``200`` with the same number for a
repeated ``Idempotency-Key``), ``429``/``503`` with ``Retry-After`` when busy, and ``4xx``
for a case it refuses.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

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


class AktenablageSettings(AdapterSettings):
    base_url: str
    api_token_env: SecretEnv | None = None
    """Name of the environment variable with the API token (never the token itself)."""
    ablage: str = "Eingang"
    """The folder (Ablage) new cases are filed in."""
    request_timeout_seconds: float = 20.0
    """Per HTTP request; keep it below the destination's ``timeout_seconds`` so that a slow
    Aktenablage ends as this adapter's own transient error, with a clear message."""


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (delta-seconds or an HTTP date), if any."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


class AktenablageAdapter(Adapter[AktenablageSettings]):
    settings_model = AktenablageSettings

    def __init__(self, settings: AktenablageSettings) -> None:
        super().__init__(settings)
        # One client (connection pool) for every delivery of the destination; closed in
        # aclose(), which the worker awaits when it stops or the configuration changes.
        self._client = httpx.AsyncClient(
            base_url=settings.base_url, timeout=settings.request_timeout_seconds
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def deliver(self, delivery: Delivery) -> Receipt:
        case = await self.case(delivery)
        try:
            response = await self._client.post(
                "/cases", json=case, headers=self.headers(delivery)
            )
        except httpx.TransportError as exc:  # includes timeouts; never the request itself
            raise TransientDeliveryError(f"Aktenablage unreachable: {type(exc).__name__}") from None
        return self.receipt(response)

    def headers(self, delivery: Delivery) -> dict[str, str]:
        headers = {"Idempotency-Key": delivery.delivery_id}
        if self.settings.api_token_env:
            headers["Authorization"] = f"Bearer {secret_from_env(self.settings.api_token_env)}"
        return headers

    async def case(self, delivery: Delivery) -> dict[str, Any]:
        case: dict[str, Any] = {
            "ablage": self.settings.ablage,
            "vorgangsart": delivery.message_type,
            "gemeindeschluessel": delivery.municipality,
            "externe_kennung": delivery.message_uuid,
        }
        if (mapped := delivery.mapped) is not None:
            case["daten"] = dict(mapped.data)  # what the route's mapping made of the XML
        else:
            case["antrag_xml"] = delivery.xml.decode("utf-8")
        # Streamed from the blob store off the event loop, base64 per chunk.
        case["anlagen"] = [await a.to_json() for a in delivery.attachments]
        return case

    def receipt(self, response: httpx.Response) -> Receipt:
        status = response.status_code
        if status == 429 or status >= 500:
            raise TransientDeliveryError(
                f"Aktenablage answered {status}", retry_after=retry_after(response)
            )
        if status >= 400:
            # The answer's text, not the request: the request carries the token.
            raise PermanentDeliveryError(
                f"Aktenablage refused the case: {status} {response.text[:200]}"
            )
        return Receipt(reference=response.json()["case_number"], message="filed in Aktenablage")
