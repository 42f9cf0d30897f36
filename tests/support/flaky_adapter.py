"""Adapters that fail on purpose, to drive the worker's retry and dead-letter paths."""

from __future__ import annotations

from pathlib import Path

from gateway.sdk import (
    Adapter,
    AdapterSettings,
    Delivery,
    PermanentDeliveryError,
    Receipt,
    TransientDeliveryError,
)


class FlakySettings(AdapterSettings):
    """Fails transiently while ``switch`` file is absent, then succeeds; or always permanently."""

    switch: Path
    permanent: bool = False


class FlakyAdapter(Adapter[FlakySettings]):
    settings_model = FlakySettings

    async def deliver(self, delivery: Delivery) -> Receipt:
        if self.settings.switch.exists():
            return Receipt(reference=f"case-{delivery.delivery_id[:8]}")
        if self.settings.permanent:
            raise PermanentDeliveryError("Fachverfahren refuses the case (test)")
        raise TransientDeliveryError("Fachverfahren unavailable (test)", retry_after=0.05)
