"""Sends no idempotency key: a redelivery after a crash opens a second case."""

from __future__ import annotations

from xoev_gateway_adapter_example.adapter import AktenablageAdapter

from gateway.sdk import Delivery

CAUGHT_BY = "test_same_delivery_id_twice_is_one_case"


class Mutant(AktenablageAdapter):
    def headers(self, delivery: Delivery) -> dict[str, str]:
        headers = super().headers(delivery)
        del headers["Idempotency-Key"]
        return headers
