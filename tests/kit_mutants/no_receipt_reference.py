"""Confirms the delivery without the case number."""

from __future__ import annotations

import httpx
from xoev_gateway_adapter_example.adapter import AktenablageAdapter

from gateway.sdk import Receipt

CAUGHT_BY = "test_delivers_with_receipt"


class Mutant(AktenablageAdapter):
    def receipt(self, response: httpx.Response) -> Receipt:
        super().receipt(response)
        return Receipt(message="filed in Aktenablage")
