"""Turns its cancellation (the worker's timeout, a shutdown) into a transient error."""

from __future__ import annotations

import asyncio

from xoev_gateway_adapter_example.adapter import AktenablageAdapter

from gateway.sdk import Delivery, Receipt, TransientDeliveryError

CAUGHT_BY = "test_cancelled_delivery_ends_cancelled"


class Mutant(AktenablageAdapter):
    async def deliver(self, delivery: Delivery) -> Receipt:
        try:
            return await super().deliver(delivery)
        except asyncio.CancelledError:
            raise TransientDeliveryError("Aktenablage: delivery interrupted") from None
