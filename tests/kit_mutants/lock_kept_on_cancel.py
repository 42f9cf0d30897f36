"""Delivers one at a time, but a cancelled delivery (the worker's timeout) keeps the lock:
every later delivery of the destination waits for it forever."""

from __future__ import annotations

import asyncio

from xoev_gateway_adapter_example.adapter import AktenablageAdapter, AktenablageSettings

from gateway.sdk import Delivery, Receipt

CAUGHT_BY = "test_hung_target_times_out_and_is_retried"


class Mutant(AktenablageAdapter):
    def __init__(self, settings: AktenablageSettings) -> None:
        super().__init__(settings)
        self._one_at_a_time = asyncio.Lock()

    async def deliver(self, delivery: Delivery) -> Receipt:
        await self._one_at_a_time.acquire()
        try:
            receipt = await super().deliver(delivery)
        except Exception:  # not on cancellation (a BaseException): the mutant's point
            self._one_at_a_time.release()
            raise
        self._one_at_a_time.release()
        return receipt
