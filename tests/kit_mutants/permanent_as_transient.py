"""Treats a refused case (4xx) as transient: retried until the attempts run out."""

from __future__ import annotations

import httpx
from xoev_gateway_adapter_example.adapter import AktenablageAdapter

from gateway.sdk import Receipt, TransientDeliveryError

CAUGHT_BY = "test_retry_hint_is_honoured"


class Mutant(AktenablageAdapter):
    def receipt(self, response: httpx.Response) -> Receipt:
        if response.status_code >= 400:
            raise TransientDeliveryError(f"Aktenablage answered {response.status_code}")
        return super().receipt(response)
