"""Answers a repeated delivery (200, case already filed) without the case number."""

from __future__ import annotations

import httpx
from xoev_gateway_adapter_example.adapter import AktenablageAdapter

from gateway.sdk import Receipt

CAUGHT_BY = "test_same_delivery_id_twice_is_one_case"


class Mutant(AktenablageAdapter):
    def receipt(self, response: httpx.Response) -> Receipt:
        if response.status_code == 200:
            return Receipt(message="already filed")
        return super().receipt(response)
