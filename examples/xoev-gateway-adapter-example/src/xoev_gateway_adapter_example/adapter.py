"""Delivers to "Aktenablage", a (fictitious) Fachverfahren with a small REST API.

Its API takes a case as JSON with German field names at ``POST {base_url}/cases``,
authenticates with a static API token, answers ``{"case_number": ...}`` and recognises a
repeated request by its ``Idempotency-Key`` header.
"""

from __future__ import annotations

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


class AktenablageAdapter(Adapter[AktenablageSettings]):
    settings_model = AktenablageSettings

    def __init__(self, settings: AktenablageSettings) -> None:
        super().__init__(settings)
        self._client = httpx.AsyncClient(base_url=settings.base_url, timeout=30)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def deliver(self, delivery: Delivery) -> Receipt:
        headers = {"Idempotency-Key": delivery.delivery_id}
        if self.settings.api_token_env:
            headers["Authorization"] = f"Bearer {secret_from_env(self.settings.api_token_env)}"
        case = {
            "ablage": self.settings.ablage,
            "vorgangsart": delivery.message_type,
            "gemeindeschluessel": delivery.municipality,
            "externe_kennung": delivery.message_uuid,
            "antrag_xml": delivery.xml.decode("utf-8"),
            "anlagen": [a.name for a in delivery.attachments],
        }
        try:
            response = await self._client.post("/cases", json=case, headers=headers)
        except httpx.TransportError as exc:  # includes timeouts
            raise TransientDeliveryError(f"Aktenablage unreachable: {type(exc).__name__}") from None
        if response.status_code == 429 or response.status_code >= 500:
            retry_after = response.headers.get("retry-after")
            raise TransientDeliveryError(
                f"Aktenablage answered {response.status_code}",
                retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
            )
        if response.status_code >= 400:
            raise PermanentDeliveryError(
                f"Aktenablage refused the case: {response.status_code} {response.text[:200]}"
            )
        return Receipt(reference=response.json()["case_number"], message="filed in Aktenablage")
