"""Puts the token into the receipt's message."""

from __future__ import annotations

import httpx
from xoev_gateway_adapter_example.adapter import AktenablageAdapter

from gateway.sdk import Receipt

CAUGHT_BY = "test_delivers_with_receipt"


class Mutant(AktenablageAdapter):
    def receipt(self, response: httpx.Response) -> Receipt:
        receipt = super().receipt(response)
        auth = response.request.headers.get("authorization")
        return Receipt(reference=receipt.reference, message=f"filed as {auth}")
