"""Posts with a synchronous HTTP client: a slow target stalls the whole worker."""

from __future__ import annotations

import httpx

from gateway.sdk import Delivery, Receipt, TransientDeliveryError
from xoev_gateway_adapter_example.adapter import AktenablageAdapter

CAUGHT_BY = "test_hung_target_times_out_and_is_retried"


class Mutant(AktenablageAdapter):
    async def deliver(self, delivery: Delivery) -> Receipt:
        case = await self.case(delivery)
        try:
            with httpx.Client(base_url=self.settings.base_url, timeout=20) as client:
                response = client.post("/cases", json=case, headers=self.headers(delivery))
        except httpx.TransportError as exc:
            raise TransientDeliveryError(f"unreachable: {type(exc).__name__}") from None
        return self.receipt(response)
