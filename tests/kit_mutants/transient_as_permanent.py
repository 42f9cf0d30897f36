"""Treats an outage (5xx) as permanent: dead-lettered instead of retried."""

from __future__ import annotations

import httpx
from xoev_gateway_adapter_example.adapter import AktenablageAdapter

from gateway.sdk import PermanentDeliveryError, Receipt

CAUGHT_BY = "test_transient_failure_is_retried"


class Mutant(AktenablageAdapter):
    def receipt(self, response: httpx.Response) -> Receipt:
        if response.status_code >= 400:
            raise PermanentDeliveryError(f"Aktenablage answered {response.status_code}")
        return super().receipt(response)
