"""Posts with a synchronous HTTP client: a slow target stalls the whole worker."""

from __future__ import annotations

import httpx
from xoev_gateway_adapter_example.adapter import AktenablageAdapter

from gateway.sdk import Delivery, Receipt, TransientDeliveryError

CAUGHT_BY = "test_cancelled_delivery_ends_cancelled"


class Mutant(AktenablageAdapter):
    async def deliver(self, delivery: Delivery) -> Receipt:
        case = await self.case(delivery)
        try:
            with httpx.Client(base_url=self.settings.base_url, timeout=20) as client:
                response = client.post("/cases", json=case, headers=self.headers(delivery))
        except httpx.TransportError as exc:
            raise TransientDeliveryError(f"unreachable: {type(exc).__name__}") from None
        return self.receipt(response)
