"""Puts the request headers (with the API token) into the error of an outage."""

from __future__ import annotations

import httpx
from xoev_gateway_adapter_example.adapter import AktenablageAdapter

from gateway.sdk import Receipt, TransientDeliveryError

CAUGHT_BY = "test_transient_failure_is_retried"


class Mutant(AktenablageAdapter):
    def receipt(self, response: httpx.Response) -> Receipt:
        if response.status_code >= 500:
            raise TransientDeliveryError(
                f"Aktenablage answered {response.status_code} to {dict(response.request.headers)}"
            )
        return super().receipt(response)
