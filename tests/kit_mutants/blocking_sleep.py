"""Throttles itself with time.sleep: the whole worker stands still meanwhile."""

from __future__ import annotations

import time

from xoev_gateway_adapter_example.adapter import AktenablageAdapter

from gateway.sdk import Delivery, Receipt

CAUGHT_BY = "test_delivers_with_receipt"


class Mutant(AktenablageAdapter):
    async def deliver(self, delivery: Delivery) -> Receipt:
        time.sleep(1.0)  # noqa: ASYNC251 - the mutant's point
        return await super().deliver(delivery)
