"""Opens a new HTTP client for every delivery and never closes it."""

from __future__ import annotations

import httpx
from xoev_gateway_adapter_example.adapter import AktenablageAdapter

from gateway.sdk import Delivery, Receipt, TransientDeliveryError

CAUGHT_BY = "test_delivers_with_receipt"


class Mutant(AktenablageAdapter):
    async def deliver(self, delivery: Delivery) -> Receipt:
        client = httpx.AsyncClient(base_url=self.settings.base_url, timeout=20)
        try:
            response = await client.post(
                "/cases", json=await self.case(delivery), headers=self.headers(delivery)
            )
        except httpx.TransportError as exc:
            raise TransientDeliveryError(f"unreachable: {type(exc).__name__}") from None
        return self.receipt(response)
